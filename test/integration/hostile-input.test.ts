/**
 * The agent treats every message as untrusted (issue 7, item 4): a real agent process is fed
 * SPLITBRAIN_FUZZ_MESSAGES (default 100,000) messages from a seeded generator
 * (helpers/hostile-messages.ts: random bytes, truncated and corrupted requests, wrong shapes,
 * hostile msgpack length headers, deep nesting, every op with hostile values, messages of the
 * bus's max_payload). Every message with a reply subject gets exactly one reply, in time, that
 * decodes; malformed ones get the errno they must; none is EIO (an error nobody named) or
 * carries a stack. Nothing outside the export root changes, no device opens, the agent stays
 * up in bounded memory and serves a master normally afterwards.
 *
 * Replay a run with SPLITBRAIN_FUZZ_SEED=<the seed it printed>; scripts/fuzz.sh runs it longer.
 */
import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Decoder } from '@msgpack/msgpack';
import { connect, createInbox, type Msg, type NatsConnection } from 'nats';
import {
  PROTOCOL_VERSION, attrFromWire, decodeReply, encodeRequest, isErrnoName, opSubject, type OpName,
} from '../../protocol/index.js';
import { HostileMessages, type FuzzWorld, type HostileMessage } from '../helpers/hostile-messages.js';
import { CANARY, CANARY_CONTENT } from '../helpers/hostile-values.js';
import { SeededRandom } from '../helpers/seeded-random.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

const MESSAGES = Number(process.env.SPLITBRAIN_FUZZ_MESSAGES ?? 100_000);
const SEED = SeededRandom.seedFromEnv();
const AGENT_ID = 'hostile';
/** Requests in flight at once: enough to keep the agent busy, few enough to bound our memory. */
const WINDOW = 256;
/** Every reply within this, however loaded the machine (the agent answers in microseconds). */
const REPLY_WITHIN_MS = 10_000;
/** One message of the bus's max_payload every this many messages (each costs ~1 MB each way). */
const MAX_PAYLOAD_EVERY = 2_000;
/**
 * RSS bounds. The agent idles at ~70 MB. Its largest allocations per message are bounded by
 * the message (1 MiB): the decoder's state for a 1 MiB nesting or array is a few tens of MB,
 * released once answered; its caches are bounded (replay cache 32 MiB, 256 readdir cursors,
 * 10,000 handles). So: peak well under 300 MB, and what is kept after the run under 150 MB more
 * than before it (V8 keeps part of what it grew to).
 */
const MAX_RSS_MB = 300;
const MAX_RSS_GROWTH_MB = 150;
const MAX_PROBLEMS = 25;
/** A progress line this often, for the long runs of scripts/fuzz.sh. */
const PROGRESS_EVERY = Math.max(10_000, Math.ceil(MESSAGES / 10));

interface Sent {
  message: HostileMessage;
  at: number;
}

const raw = new Decoder();

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** Every entry under `dir` (but `skip`) with what a write, chmod, chown, rename or xattr changes. */
function snapshot(dir: string, skip: string): string[] {
  const lines: string[] = [];
  const walk = (path: string) => {
    const st = lstatSync(path);
    lines.push(`${path} ${st.mode} ${st.uid}:${st.gid} ${st.size} ${st.ino} ${st.nlink} ${st.mtimeMs} ${st.ctimeMs}`);
    if (st.isDirectory()) for (const name of readdirSync(path).sort()) if (join(path, name) !== skip) walk(join(path, name));
  };
  walk(dir);
  return lines;
}

describe('hostile input', () => {
  let slave: BareAgent;
  let devRoot: string;
  let nc: NatsConnection;
  let outside: string;
  const outsideInodes = new Set<number>();

  before(async () => {
    devRoot = await mkdtemp(join(tmpdir(), 'splitbrain-fuzz-dev-'));
    slave = await startBareAgent({
      id: AGENT_ID,
      agentArgs: ['--no-exec', '--dev-root', devRoot],
      prepare: async (root, tmp) => {
        outside = join(tmp, 'outside');
        await mkdir(outside);
        await writeFile(join(outside, CANARY), CANARY_CONTENT);
        await writeFile(join(root, 'file'), 'inside the root\n');
        await mkdir(join(root, 'dir'));
        await mkdir(join(root, 'sub'));
        await symlink(outside, join(root, 'abs-out'));
        await symlink('../outside', join(root, 'rel-out'));
        await symlink(tmp, join(root, 'tmp-link'));
        await symlink('..', join(root, 'up'));
        await symlink('hop2', join(root, 'hop1'));
        await symlink('rel-out', join(root, 'hop2'));
        await symlink(`../outside/${CANARY}`, join(root, 'canary-link'));
        await symlink('loop', join(root, 'loop'));
      },
    });
    for (const path of [slave.tmp, outside, join(outside, CANARY)]) outsideInodes.add(lstatSync(path).ino);
    nc = await connect({ servers: slave.nats.url, name: 'splitbrain-fuzz' });
  });
  after(async () => {
    await nc?.close();
    await slave?.stop();
    await rm(devRoot, { recursive: true, force: true });
  });

  async function request<K extends OpName>(op: K, args: Parameters<typeof encodeRequest<K>>[2]) {
    const reply = await nc.request(opSubject(AGENT_ID, op), encodeRequest(op, `check:${op}`, args), { timeout: 5000 });
    return decodeReply(op, reply.data);
  }

  it(`answers ${MESSAGES} hostile messages, each once, with errors where due, and stays up`, { timeout: 600_000 }, async (t) => {
    const hello = await request('agent.hello', {});
    assert.ok(hello.ok);
    const { bootId, maxPayload, pid } = hello.result;
    t.diagnostic(`seed ${SEED} (replay: SPLITBRAIN_FUZZ_SEED=${SEED}), ${MESSAGES} messages, max_payload ${maxPayload}`);
    const before = snapshot(slave.tmp, slave.root);
    const devBefore = snapshot(devRoot, '');
    const world: FuzzWorld = { agentId: AGENT_ID, bootId, handles: [], cursors: [] };
    const messages = new HostileMessages(new SeededRandom(SEED), world);

    // A message over max_payload never leaves the client: nats.js refuses it (and a server would
    // close the sender's connection, not the agent's).
    assert.throws(() => nc.publish(opSubject(AGENT_ID, 'fs.write'), new Uint8Array(maxPayload + 1), { reply: createInbox() }),
      /MAX_PAYLOAD_EXCEEDED|payload/i);

    const rssBefore = rssMb(pid);
    let rssPeak = rssBefore;
    const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, rssMb(pid)); }, 200);
    const inbox = createInbox();
    const outstanding = new Map<number, Sent>();
    const answered = new Uint8Array(MESSAGES + 1);
    /** What went wrong, by kind of problem and op: how often, and the first example. */
    const problems = new Map<string, { count: number; example: string }>();
    const tally = new Map<string, number>();
    let wake: (() => void) | undefined;
    const problem = (what: string, sent: Sent | undefined, reply?: string) => {
      const m = sent?.message;
      const key = `${what}: ${m ? `${m.kind} ${m.subject.split('.').slice(2).join('.')}` : ''}`;
      const known = problems.get(key);
      if (known) known.count++;
      else if (problems.size < MAX_PROBLEMS) {
        const example = m ? `${Buffer.from(m.data.subarray(0, 64)).toString('hex')} (${m.data.length} bytes)` : '';
        problems.set(key, { count: 1, example: `${example}${reply ? ` -> ${reply}` : ''}` });
      }
    };

    const check = (sent: Sent, msg: Msg) => {
      const { message } = sent;
      let envelope: { v?: unknown; boot?: unknown; err?: { errno?: unknown; message?: unknown } };
      try {
        envelope = raw.decode(msg.data) as typeof envelope;
        assert.equal(envelope.v, PROTOCOL_VERSION);
        assert.equal(envelope.boot, bootId); // a different boot: the agent restarted
      } catch (err) {
        return problem(`reply does not decode (${(err as Error).message.split('\n')[0]})`, sent);
      }
      let decoded;
      try {
        decoded = decodeReply(message.op, msg.data);
      } catch (err) {
        return problem(`reply does not match ${message.op}'s schema (${(err as Error).message})`, sent);
      }
      const outcome = decoded.ok ? 'OK' : decoded.error.errnoName;
      const key = `${message.kind} ${outcome}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
      if (!decoded.ok) {
        const text = `${String(envelope.err?.errno)} ${String(envelope.err?.message).slice(0, 300)}`;
        if (!isErrnoName(envelope.err?.errno)) return problem('not an errno', sent, text);
        if (outcome === 'EIO') return problem('EIO (an error without an errno)', sent, text);
        if (/\n\s+at /.test(String(envelope.err?.message))) return problem('a stack trace in the reply', sent, text);
        if (message.errnos && !message.errnos.includes(outcome)) return problem(`expected ${message.errnos.join('|')}`, sent, text);
        return undefined;
      }
      if (message.errnos) return problem(`expected ${message.errnos.join('|')}, got success`, sent);
      const result = decoded.result as Record<string, unknown>;
      if (message.op === 'dev.open') return problem('a device opened: the dev root is empty', sent);
      const attrs = [result.attr, ...(Array.isArray(result.entries) ? result.entries.map((e: unknown[]) => e[1]) : [])];
      for (const attr of attrs) {
        if (Array.isArray(attr) && outsideInodes.has(attrFromWire(attr).ino)) return problem('attributes of a file outside the root', sent);
      }
      if (result.data instanceof Uint8Array && Buffer.from(result.data).includes(CANARY_CONTENT)) return problem('read the canary', sent);
      if ((message.op === 'fs.open' || message.op === 'fs.create') && typeof result.fh === 'number') {
        world.handles.push(result.fh);
        if (world.handles.length > 64) world.handles.shift();
      }
      if (typeof result.cursor === 'number') world.cursors.push(result.cursor);
      if (world.cursors.length > 16) world.cursors.shift();
      return undefined;
    };

    const sub = nc.subscribe(`${inbox}.*`, {
      callback: (err, msg) => {
        if (err) return problem(`reply subscription failed: ${err.message}`, undefined);
        const n = Number(msg.subject.slice(inbox.length + 1));
        const sent = outstanding.get(n);
        if (!sent) return problem(answered[n] ? 'a second reply' : `a reply to ${msg.subject}, never asked`, undefined);
        outstanding.delete(n);
        answered[n] = 1;
        check(sent, msg);
        if (outstanding.size < WINDOW / 2) wake?.();
      },
    });

    /** Waits until fewer than `limit` are in flight; fails what waited longer than allowed. */
    const drain = async (limit: number) => {
      while (outstanding.size > limit) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 500).unref();
        });
        const now = Date.now();
        for (const [n, sent] of outstanding) {
          if (now - sent.at < REPLY_WITHIN_MS) break; // in sending order: the rest are younger
          problem(`no reply within ${REPLY_WITHIN_MS} ms`, sent);
          outstanding.delete(n);
        }
      }
    };

    const started = Date.now();
    let withReply = 0;
    try {
      for (let n = 1; n <= MESSAGES; n++) {
        if (outstanding.size >= WINDOW) await drain(WINDOW / 2);
        if (n % PROGRESS_EVERY === 0) {
          // stderr, not a diagnostic: those only appear once the test ends.
          process.stderr.write(`hostile-input: ${n} messages, ${((Date.now() - started) / 1000).toFixed(1)} s, agent RSS ${rssMb(pid).toFixed(0)} MB\n`);
        }
        const message = n % MAX_PAYLOAD_EVERY === 0 ? messages.ofSize(maxPayload) : messages.next();
        if (!message.reply) {
          nc.publish(message.subject, message.data);
          continue;
        }
        withReply++;
        outstanding.set(n, { message, at: Date.now() });
        nc.publish(message.subject, message.data, { reply: `${inbox}.${n}` });
      }
      await drain(0);
    } finally {
      clearInterval(sampler);
      sub.unsubscribe();
    }
    const seconds = (Date.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 1000)); // what the last replies held is let go
    const rssAfter = rssMb(pid);
    t.diagnostic(`${MESSAGES} messages (${withReply} with a reply subject) in ${seconds.toFixed(1)} s; agent RSS ${rssBefore.toFixed(0)} MB before, peak ${rssPeak.toFixed(0)} MB, ${rssAfter.toFixed(0)} MB after`);
    t.diagnostic([...tally].sort().map(([k, v]) => `${k}: ${v}`).join(', '));

    assert.deepEqual([...problems].map(([key, { count, example }]) => `${count} x ${key}; e.g. ${example}`), [], `seed ${SEED}`);
    assert.equal(slave.agent.child.exitCode, null, `the agent exited (seed ${SEED}):\n${slave.agent.log()}`);
    assert.equal(slave.agent.child.signalCode, null);
    assert.ok(rssPeak < MAX_RSS_MB, `agent RSS peaked at ${rssPeak} MB`);
    assert.ok(rssAfter - rssBefore < MAX_RSS_GROWTH_MB, `agent RSS grew from ${rssBefore} to ${rssAfter} MB`);
    assert.deepEqual(snapshot(slave.tmp, slave.root), before, 'something outside the export root changed');
    assert.deepEqual(snapshot(devRoot, ''), devBefore, 'the dev root changed');
    assert.equal(readFileSync(join(outside, CANARY), 'utf8'), CANARY_CONTENT);
  });

  it('still serves a master normally afterwards', async () => {
    const hello = await request('agent.hello', {});
    assert.ok(hello.ok && hello.result.agentId === AGENT_ID);
    assert.ok((await request('fs.getattr', { path: '/' })).ok);
    const created = await request('fs.create', { path: '/after-the-fuzz', flags: 2, mode: 0o644 });
    assert.ok(created.ok, created.ok ? '' : created.error.message);
    const { fh } = created.result;
    assert.ok((await request('fs.write', { fh, offset: 0, data: Buffer.from('still here') })).ok);
    const read = await request('fs.read', { fh, offset: 0, length: 100 });
    assert.ok(read.ok);
    assert.equal(Buffer.from(read.result.data).toString(), 'still here');
    assert.ok((await request('fs.release', { fh })).ok);
  });
});
