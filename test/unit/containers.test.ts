/**
 * `splitbrain run`'s sidecar container and compose/docker-compose.yml's sidecar service must stay
 * in step (compose/containers.ts): the same variables, each documented in compose/.env.example.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { sidecarContainer, type SidecarSpec } from '../../compose/containers.js';
import { parseExecUser } from '../../sidecar/exec-user.js';

const compose = readFileSync(new URL('../../../compose/docker-compose.yml', import.meta.url), 'utf8');
const envExample = readFileSync(new URL('../../../compose/.env.example', import.meta.url), 'utf8');

const spec: SidecarSpec = {
  name: 'x', image: 'splitbrain/sidecar:local', shareDir: '/run/splitbrain/x', networkMode: 'bridge', labels: {},
  slave: 'nats://lab-box-7:4222', commands: ['uname'], bridgeAll: false, bridgeMissing: false, pythonFallback: false, keep: [], execUser: parseExecUser('1000'),
  maps: [], slaveAt: '/slave', logLevel: 'info', auth: {},
};
const env = (s: SidecarSpec) => new Map((sidecarContainer(s).Env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));

describe('the sidecar container', () => {
  it('hands --exec-user to the sidecar as SPLITBRAIN_EXEC_USER', () => {
    assert.equal(env(spec).get('SPLITBRAIN_EXEC_USER'), '1000:1000');
    assert.equal(env({ ...spec, execUser: parseExecUser('caller') }).get('SPLITBRAIN_EXEC_USER'), 'caller');
  });
  it('sets only variables the compose file sets too, and the compose file only documented ones', () => {
    for (const name of env(spec).keys()) assert.match(compose, new RegExp(`^\\s+${name}: `, 'm'), `${name} is not in docker-compose.yml`);
    for (const [, name] of compose.matchAll(/\$\{([A-Z_]+)/g)) {
      assert.match(envExample, new RegExp(`^${name}=`, 'm'), `${name ?? ''} is not in .env.example`);
    }
  });
});
