import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_SPAWN_GROUPS } from '../../protocol/index.js';
import { ExecUserError, formatExecUser, parseExecUser, spawnIds } from '../../sidecar/exec-user.js';

describe('--exec-user', () => {
  it('takes caller, agent, UID and UID:GID (a lone UID is its own group)', () => {
    assert.deepEqual(parseExecUser('caller'), { kind: 'caller' });
    assert.deepEqual(parseExecUser('agent'), { kind: 'agent' });
    assert.deepEqual(parseExecUser('1000'), { kind: 'fixed', uid: 1000, gid: 1000 });
    assert.deepEqual(parseExecUser('4242:4343'), { kind: 'fixed', uid: 4242, gid: 4343 });
    assert.deepEqual(parseExecUser('0:0'), { kind: 'fixed', uid: 0, gid: 0 });
    assert.equal(formatExecUser(parseExecUser('4242')), '4242:4242');
    assert.equal(formatExecUser(parseExecUser('caller')), 'caller');
  });
  it('refuses anything else, and (uid_t)-1', () => {
    for (const bad of ['', 'root', 'Caller', '-1', '1:', ':1', '1:2:3', '1.5', ' 1', '4294967295', '1:4294967295', '99999999999']) {
      assert.throws(() => parseExecUser(bad), ExecUserError, bad);
    }
  });
  it('caller: the caller\'s ids, unless the agent is not root, the caller is root or the shim did not say', () => {
    const caller = { uid: 1000, gid: 1000, groups: [1000, 27] };
    const asCaller = parseExecUser('caller');
    assert.deepEqual(spawnIds(asCaller, caller, 0), { uid: 1000, gid: 1000, groups: [1000, 27] });
    assert.deepEqual(spawnIds(asCaller, caller, 1000), {});
    assert.deepEqual(spawnIds(asCaller, { uid: 0, gid: 0, groups: [0, 1] }, 0), {});
    assert.deepEqual(spawnIds(asCaller, undefined, 0), {});
    assert.throws(() => spawnIds(asCaller, { ...caller, groups: Array.from({ length: MAX_SPAWN_GROUPS + 1 }, (_, i) => i) }, 0),
      /4097 supplementary groups; at most 4096/);
    assert.throws(() => spawnIds(asCaller, { ...caller, uid: 0xffffffff }, 0), ExecUserError);
  });
  it('agent: nothing asked; UID:GID: those, with the gid as the only group, whoever calls', () => {
    const caller = { uid: 1000, gid: 1000, groups: [27] };
    assert.deepEqual(spawnIds(parseExecUser('agent'), caller, 0), {});
    assert.deepEqual(spawnIds(parseExecUser('4242:4343'), caller, 0), { uid: 4242, gid: 4343, groups: [4343] });
    assert.deepEqual(spawnIds(parseExecUser('4242:4343'), undefined, 1000), { uid: 4242, gid: 4343, groups: [4343] });
  });
});
