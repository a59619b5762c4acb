/**
 * The master side treats an agent's replies as untrusted too (issue 7, item 4): a scripted fake
 * agent on the bus (a raw subscriber on `splitbrain.fake.>` and on discovery) answers garbage,
 * truncated, wrong-shaped or hostile replies, and `splitbrain hello`, `splitbrain exec` and a
 * mount's startup each fail with a one-line message and a non-zero exit, never a crash (a
 * stack trace), a hang or a mount left behind.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from 'nats';
import { DISCOVER_SUBJECT, agentWildcard, encodeErrorReply, encodeReply } from '../../protocol/index.js';
import { isMounted } from '../../mount/mount-watch.js';
import { deepNesting, hugeHeader, pack } from '../helpers/hostile-values.js';
import { startNats, type NatsServer } from '../helpers/nats-server.js';
import { CLI, run, type RunResult } from '../helpers/processes.js';
import { SeededRandom } from '../helpers/seeded-random.js';

const rng = new SeededRandom(7);
const HELLO = {
  protocol: 1, agentId: 'fake', hostname: 'fake', platform: 'linux', release: '6', bootId: 'boot-1', hostBootId: '',
  root: '/', readOnly: false, capabilities: [], maxPayload: 1 << 20, pid: 1, euid: 0, startedAt: 0,
  policy: { devAllow: [], exec: 'all' as const },
};
const hello = encodeReply('agent.hello', 'boot-1', HELLO);

/** What the fake agent answers to anything, by name. */
const REPLIES: Record<string, () => Uint8Array> = {
  'random bytes': () => rng.bytes(64),
  'nothing (an empty message)': () => new Uint8Array(0),
  'a truncated hello': () => hello.subarray(0, hello.length - 20),
  'a hello of the wrong shape': () => pack({ v: 1, boot: 'boot-1', ok: { agentId: 7, maxPayload: -1 } }),
  'a reply of a newer protocol': () => pack({ v: 9, boot: 'boot-1', ok: 'something else entirely' }),
  'an error with no errno': () => encodeErrorReply('boot-1', 'ENOTANERRNO', 'x'.repeat(10_000)),
  // Printed on the master's terminal: must not retitle it, clear it or forge lines.
  'terminal escapes in an error': () => encodeErrorReply('boot-1', 'EIO', '\x1b]0;pwned\x07\x1b[2J\rforged\nsplitbrain: ok'),
  'nesting a million deep': () => deepNesting(1_000_000, 'array'),
  // status and hello print the hello's strings: they must not carry escapes to the screen.
  'terminal escapes in its hostname': () => encodeReply('agent.hello', 'boot-1', { ...HELLO, hostname: '\x1b]0;pwned\x07\x1b[2Jforged' }),
  'a length header of 4 GiB': () => Uint8Array.from([0x83, 0xa1, 0x76, 0x01, 0xa4, 0x62, 0x6f, 0x6f, 0x74, ...hugeHeader(rng)]),
};

/** A clean failure: exit status as given, one line on stderr, no stack trace, no signal. */
function assertCleanFailure(result: RunResult, codes: number[], what: string): void {
  const stderr = result.stderr.trim();
  assert.equal(result.signal, null, `${what}: killed (hung?)\n${stderr}`);
  assert.ok(codes.includes(result.code ?? -1), `${what}: exit ${result.code}\n${stderr}`);
  assert.doesNotMatch(stderr, /\n\s+at /, `${what}: a stack trace\n${stderr}`);
  assert.match(stderr, /^splitbrain: /, `${what}: no message\n${stderr}`);
  // One line of bounded length, nothing a terminal would act on: the agent's text is untrusted.
  assert.ok(!stderr.includes('\n') && stderr.length < 3000, `${what}: not one bounded line\n${stderr}`);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(stderr, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, `${what}: control characters`);
}

describe('a hostile agent', () => {
  let nats: NatsServer;
  let fake: NatsConnection;
  let answer: () => Uint8Array = REPLIES['random bytes'] as () => Uint8Array;
  let tmp: string;

  before(async () => {
    nats = await startNats();
    fake = await connect({ servers: nats.url, name: 'fake-agent' });
    for (const subject of [agentWildcard('fake'), DISCOVER_SUBJECT]) {
      fake.subscribe(subject, { callback: (_err, msg) => { if (msg.reply) msg.respond(answer()); } });
    }
    await fake.flush();
    tmp = await mkdtemp(join(tmpdir(), 'splitbrain-hostile-agent-'));
  });
  after(async () => {
    await fake?.close();
    await nats?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const cli = (args: string[]) => run(process.execPath, [CLI, ...args], { timeoutMs: 30_000 });

  for (const [name, reply] of Object.entries(REPLIES)) {
    it(`hello and exec fail cleanly when the agent answers ${name}`, async () => {
      answer = reply;
      assertCleanFailure(await cli(['hello', nats.url, '--agent', 'fake']), [1], 'hello --agent');
      // Discovery skips what does not decode: no agent, said so.
      assertCleanFailure(await cli(['hello', nats.url]), [1], 'hello');
      // status lists no such agent (by discovery) or says it did not answer (by name).
      assertCleanFailure(await cli(['status', nats.url, '--wait', '0.5']), [1], 'status');
      const named = await cli(['status', nats.url, '--agent', 'fake', '--wait', '2']);
      assert.equal(named.code, 1);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(named.stdout, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'status: control characters');
      // exec's own failure status, as ssh's: 255.
      assertCleanFailure(await cli(['exec', nats.url, '--agent', 'fake', '-n', '--slave-wait', '2', '--', 'true']), [255], 'exec');
    });
  }

  it('a mount of such an agent fails at startup and leaves no mount', async () => {
    for (const name of ['random bytes', 'a hello of the wrong shape', 'nesting a million deep']) {
      answer = REPLIES[name] as () => Uint8Array;
      const mountPath = join(tmp, `mnt-${rng.int(1e9)}`);
      await mkdir(mountPath);
      const result = await cli(['mount', nats.url, mountPath, '-f', '--agent', 'fake', '--slave-wait', '2']);
      const mounted = await isMounted(mountPath);
      if (mounted) await run('fusermount', ['-uz', mountPath]);
      assert.equal(mounted, false, `${name}: a mount was left`);
      assertCleanFailure(result, [1], `mount (${name})`);
    }
  });
});
