/**
 * Issue 22, point 6: the process output an agent keeps for masters that have not received it
 * (to send it again after a NATS failover) is bounded for the whole agent, not only per process
 * (agent/proc/output-budget.ts). A real agent and nats-server per case; a "stalled" master is a
 * ProcessClient whose output callbacks never return credit, as a master whose reader stopped
 * reading, and the bridged case is a real shim whose stdout nobody reads. What the agent keeps
 * is read from its `agent.stats`, never guessed from timing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { decodeEvent, outputSubject, type AgentStats, type ProcEvent } from '../../protocol/index.js';
import { ProcessClient, type ExitStatus, type RemoteProcess } from '../../sidecar/remote-process.js';
import { AgentClient } from '../../transport/agent-client.js';
import { connectBus, type Bus } from '../../transport/bus.js';
import { startBridgeProcess, type BridgeProcess } from '../helpers/bridge.js';
import { lossyBus } from '../helpers/lossy-bus.js';
import { stopProcess, waitFor } from '../helpers/processes.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

const log = pino({ level: 'silent' });
const MiB = 1024 * 1024;
/** The master's window (sidecar/remote-process.ts). */
const WINDOW = 8 * MiB;
/** What one pipe read may add past a full window, and an event's envelope (the budget's readSlack, the backend's outputReadBytes, and some). */
const SLACK = 256 * 1024 + 16 * 1024;

/** One agent with these output options, and a master's client of it. */
async function agentWith(id: string, budget: string, graceS: number): Promise<{
  slave: BareAgent; bus: Bus; client: AgentClient; procs: ProcessClient; output(): Promise<NonNullable<AgentStats['output']>>; stop(): Promise<void>;
}> {
  const slave = await startBareAgent({ id, agentArgs: ['--output-budget', budget, '--output-grace', String(graceS)] });
  const bus = await connectBus({ url: slave.nats.url, name: 'test', log });
  const client = new AgentClient(bus, id, { timeoutMs: 5000, log });
  const procs = new ProcessClient(client, log);
  return {
    slave, bus, client, procs,
    async output() {
      const { output } = await client.call('agent.stats', {});
      assert.ok(output, 'the agent reports its kept output');
      return output;
    },
    async stop() {
      procs.close();
      await bus.close();
      await slave.stop();
    },
  };
}

/** A process whose master never takes its output: no credit ever returns. */
interface Stalled {
  proc: RemoteProcess;
  /** The exit, or the error `exited` rejected with; undefined while it runs. */
  outcome: ExitStatus | Error | undefined;
}

/** `takeFirst`: the master takes (and credits) this much of the output first, then none. */
async function spawnStalled(procs: ProcessClient, argv: string[], takeFirst = 0): Promise<Stalled> {
  let taken = 0;
  const take = (data: Buffer, written: () => void): void => {
    if (taken >= takeFirst) return;
    taken += data.length;
    written();
  };
  const proc = await procs.spawn({ argv, env: {}, cwd: '/', pty: null }, { stdout: take, stderr: take });
  const stalled: Stalled = { proc, outcome: undefined };
  proc.exited.then((status) => { stalled.outcome = status; }, (err: unknown) => { stalled.outcome = err as Error; });
  return stalled;
}

/** Runs a command whose master takes every byte at once; resolves with its output and exit. */
async function runReading(procs: ProcessClient, argv: string[]): Promise<{ out: Buffer; status: ExitStatus }> {
  const chunks: Buffer[] = [];
  const proc = await procs.spawn({ argv, env: {}, cwd: '/', pty: null }, {
    stdout: (data, written) => { chunks.push(Buffer.from(data)); written(); },
    stderr: (_data, written) => written(),
  });
  const status = await proc.exited;
  return { out: Buffer.concat(chunks), status };
}

function wasCut(outcome: Stalled['outcome']): boolean {
  return outcome !== undefined && !(outcome instanceof Error) && outcome.cut !== undefined;
}

describe('output budget', () => {
  describe('regression (issue 22): 100 stalled readers could hold 800 MiB of an agent, 8 MiB each', () => {
    let agent: Awaited<ReturnType<typeof agentWith>>;
    const stalled: Stalled[] = [];
    before(async () => {
      agent = await agentWith('budget-100', '16M', 2);
    });
    after(async () => {
      for (const s of stalled) if (s.outcome === undefined) await s.proc.abandon();
      await agent?.stop();
    });

    it('keeps the agent within its budget: the readers that fell furthest behind are cut off with ENOBUFS, the rest wait', async () => {
      const budget = 16 * MiB;
      let peak = 0;
      let polling = true;
      const poller = (async () => {
        while (polling) {
          peak = Math.max(peak, (await agent.output()).kept);
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      try {
        for (let i = 0; i < 100; i++) stalled.push(await spawnStalled(agent.procs, ['yes', `stalled reader ${i}`]));
        const bound = budget + stalled.length * SLACK;
        // Shares shrank as the 100 started, so the first ones hold more than theirs: after the
        // grace, as many as it takes are cut off, the fullest first.
        await waitFor('the agent back within its budget', async () => {
          const now = await agent.output();
          return now.cuts > 0 && now.kept <= bound;
        }, 30_000, 200);
        for (let sample = 0; sample < 5; sample++) {
          const now = await agent.output();
          assert.ok(now.kept <= bound, `kept ${now.kept} > ${bound}`);
          await new Promise((r) => setTimeout(r, 200));
        }
        const { cuts } = await agent.output();
        await waitFor('the cut processes\' exits', () => stalled.filter((s) => wasCut(s.outcome)).length === cuts, 15_000);
        for (const s of stalled.filter((x) => x.outcome !== undefined)) {
          const status = s.outcome as ExitStatus;
          assert.equal(status.cut?.errno, 'ENOBUFS');
          assert.match(status.cut?.message ?? '', /output cut off: this master fell behind, leaving [\d.]+ MiB of it untaken for 2 s/);
        }
        assert.ok(cuts < stalled.length, 'the readers within their share are left waiting, not cut');
      } finally {
        polling = false;
        await poller;
      }
      // Reader i started when the agent had at least i processes: it never held more than its
      // window or an i-th of the budget. Without the budget: 100 windows, 800 MiB.
      let most = 0;
      for (let i = 1; i <= stalled.length; i++) most += Math.min(WINDOW, Math.floor(budget / i)) + SLACK;
      assert.ok(peak <= most, `the agent kept ${peak} bytes at its peak, more than ${most}`);
      assert.ok(peak < 100 * MiB);
    });
  });

  describe('a window that opens as the master takes output', () => {
    let agent: Awaited<ReturnType<typeof agentWith>>;
    const stalled: Stalled[] = [];
    before(async () => {
      agent = await agentWith('budget-open', '256M', 10);
    });
    after(async () => {
      for (const s of stalled) if (s.outcome === undefined) await s.proc.abandon();
      await agent?.stop();
    });

    it('leaves 1 MiB of a reader that never took any on the agent, and opens to 8 MiB for one that read', async () => {
      // Before, each stalled reader held the master's whole window (8 MiB) within a 256 MiB budget.
      for (let i = 0; i < 10; i++) stalled.push(await spawnStalled(agent.procs, ['yes', `never read ${i}`]));
      await waitFor('the ten to fill their first windows', async () => (await agent.output()).kept >= 10 * 0.9 * MiB, 15_000);
      // Settled: what they keep no longer grows.
      await new Promise((r) => setTimeout(r, 1000));
      const never = (await agent.output()).kept;
      assert.ok(never <= 10 * (MiB + SLACK), `ten readers that never read hold ${never} bytes`);

      // A reader that takes 32 MiB, then stops: its window had opened to the master's.
      stalled.push(await spawnStalled(agent.procs, ['yes', 'read a while'], 32 * MiB));
      await waitFor('its window to fill', async () => (await agent.output()).kept - never >= 4 * MiB, 15_000);
      await new Promise((r) => setTimeout(r, 1000));
      const held = (await agent.output()).kept - never;
      assert.ok(held <= WINDOW + SLACK, `the reader that stopped holds ${held} bytes`);
      assert.equal((await agent.output()).cuts, 0);
    });
  });

  describe('a bridged command whose master stops taking its output, next to readers that read', () => {
    let agent: Awaited<ReturnType<typeof agentWith>>;
    let bridge: BridgeProcess;
    const stalled: Stalled[] = [];
    before(async () => {
      agent = await agentWith('budget-bridge', '8M', 1);
      const bin = join(agent.slave.tmp, 'bin');
      bridge = await startBridgeProcess(agent.slave.nats.url, 'budget-bridge', join(agent.slave.tmp, 'bridge.sock'), bin, ['--command', 'sh']);
    });
    after(async () => {
      if (bridge?.child.pid !== undefined) process.kill(bridge.child.pid, 'SIGCONT');
      for (const s of stalled) if (s.outcome === undefined) await s.proc.abandon();
      await bridge?.stop();
      await agent?.stop();
    });

    it('cuts it (its shim says why on stderr and exits 141); the others get all their output', async () => {
      // The agent keeps what its master has not said it received. A live bridge says so with
      // every credit, and holds what its shim did not take itself (within its window): only a
      // master that stops answering leaves its output on the agent. So the command streams 32 MiB
      // first (its window opens up to the bridge's as credit comes back) and waits for `go`; the
      // bridge is stopped (SIGSTOP) then, with all of it credited, and continued once the cut is
      // made: well within the agent's 5 s lease on the process.
      const go = join(agent.slave.tmp, 'go');
      const shim = spawn(join(bridge.shimDir, 'sh'), ['-c', `yes | head -c ${32 * MiB}; while [ ! -e ${go} ]; do sleep 0.02; done; exec yes`], {
        env: { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: bridge.socket }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      let taken = 0;
      let notYes = 0;
      shim.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      // yes's output is 'y\n' over and over: counted, and any other byte.
      shim.stdout.on('data', (d: Buffer) => {
        for (const byte of d) if (byte !== 0x79 && byte !== 0x0a) notYes++;
        taken += d.length;
      });
      const closed = once(shim, 'close');
      const bridgePid = bridge.child.pid as number;
      let frozen = false;
      try {
        await waitFor('the bridged command\'s first 32 MiB', async () => taken >= 32 * MiB, 15_000);
        await new Promise((r) => setTimeout(r, 500)); // the bridge's last credit (10 ms after its last write)
        process.kill(bridgePid, 'SIGSTOP');
        frozen = true;
        await writeFile(go, '');
        await waitFor('the stalled command to fill its window', async () => (await agent.output()).kept >= 4 * MiB, 15_000)
          .catch(async (err: unknown) => {
            throw new Error(`${(err as Error).message}: kept ${(await agent.output()).kept}, shim said ${stderr}`);
          });
        // Three stalled masters after it, which never took any output, hold their first window
        // each (1 MiB): the agent is over its budget (8 MiB, 2 MiB each now) until the fullest,
        // the bridged one, is cut off, 1 s (--output-grace) later.
        for (let i = 0; i < 3; i++) stalled.push(await spawnStalled(agent.procs, ['yes', `other ${i}`]));
        await waitFor('a cut', async () => (await agent.output()).cuts >= 1, 20_000, 50);
        process.kill(bridgePid, 'SIGCONT');
        frozen = false;

        // Readers that read stream meanwhile, whole.
        const zeros = runReading(agent.procs, ['head', '-c', '20000000', '/dev/zero']);
        const lines = runReading(agent.procs, ['seq', '1', '300000']);
        const [z, l] = await Promise.all([zeros, lines]);
        assert.equal(z.status.code, 0);
        assert.equal(z.status.cut, undefined);
        assert.equal(z.out.length, 20_000_000);
        assert.ok(z.out.every((b) => b === 0));
        assert.equal(l.status.cut, undefined);
        assert.equal(l.out.toString(), `${Array.from({ length: 300_000 }, (_, i) => i + 1).join('\n')}\n`);

        // The shim has what came before the cut, then the cut's message and status.
        const timer = setTimeout(() => shim.kill('SIGKILL'), 20_000);
        const [code] = (await closed) as [number | null];
        clearTimeout(timer);
        assert.equal(code, 141, stderr);
        assert.match(stderr, /sh on budget-bridge: output cut off: this master fell behind, leaving [\d.]+ MiB of it untaken .*\(ENOBUFS\)/);
        assert.equal(notYes, 0, 'what arrived before the cut is yes\'s output');
        const now = await agent.output();
        assert.ok(now.kept <= 8 * MiB + 6 * SLACK, `kept ${now.kept} after the cuts`);
      } finally {
        if (frozen) process.kill(bridgePid, 'SIGCONT');
        await stopProcess(shim, 'SIGKILL');
      }
    });
  });

  describe('failover', () => {
    let agent: Awaited<ReturnType<typeof agentWith>>;
    before(async () => {
      agent = await agentWith('budget-lossy', '1M', 2);
    });
    after(async () => {
      await agent?.stop();
    });

    it('sends again what the bus lost, from what it keeps within a small budget: every stream arrives whole', async () => {
      // Three streams on a 1 MiB budget (a third of it each); of each, events 1, 4, 7... and the
      // exit are lost the first time they are sent.
      const lostOnce = new Set<string>();
      const bus = lossyBus(agent.bus, 'budget-lossy', (data) => {
        const event = decodeEvent(data);
        const key = `${event.procId}:${event.seq}`;
        if (lostOnce.has(key) || !('exit' in event || event.seq % 3 === 1)) return false;
        lostOnce.add(key);
        return true;
      });
      const procs = new ProcessClient(new AgentClient(bus, 'budget-lossy', { timeoutMs: 5000, log }), log);
      try {
        const results = await Promise.all([1, 2, 3].map(() => runReading(procs, ['seq', '1', '100000'])));
        const expected = `${Array.from({ length: 100_000 }, (_, i) => i + 1).join('\n')}\n`;
        for (const { out, status } of results) {
          assert.equal(status.code, 0);
          assert.equal(out.toString(), expected);
        }
        assert.ok(bus.lost >= 6, `only ${bus.lost} messages were lost`);
        const now = await agent.output();
        assert.equal(now.cuts, 0);
        assert.equal(now.budget, MiB);
      } finally {
        procs.close();
      }
    });
  });

  describe('a master older than cut events', () => {
    let agent: Awaited<ReturnType<typeof agentWith>>;
    const stalled: Stalled[] = [];
    before(async () => {
      agent = await agentWith('budget-old', '2M', 1);
    });
    after(async () => {
      for (const s of stalled) if (s.outcome === undefined) await s.proc.abandon();
      await agent?.stop();
    });

    it('gets no cut event: the process it fell behind on ends from the hang-up, its exit sent as ever', async () => {
      // proc.spawn without `cuts`, as masters before it send it. It credits its first 4 MiB, so
      // its window opens to its share of the budget (2 MiB, alone), then none ever again.
      const subject = outputSubject('budget-old', 'old-master');
      const events: ProcEvent[] = [];
      let arrived = 0;
      const sub = await agent.bus.subscribe(subject, (data) => {
        const event = decodeEvent(data);
        if ('data' in event) arrived += event.data.length;
        events.push(event);
      });
      try {
        const { procId } = await agent.client.call('proc.spawn', {
          argv: ['yes', 'old'], env: {}, cwd: '/', pty: null, output: subject, window: WINDOW,
        });
        const keepalive = setInterval(() => void agent.client.call('proc.keepalive', { procIds: [procId] }).catch(() => undefined), 1000);
        try {
          let credited = 0;
          await waitFor('its first 4 MiB', async () => {
            if (arrived > credited) {
              await agent.client.call('proc.credit', { procId, bytes: arrived - credited });
              credited = arrived;
            }
            return credited >= 4 * MiB;
          }, 15_000, 20);
          // It fills its share; the three after it get 1 MiB, then a third and a quarter of the
          // budget: it is the fullest, and the one cut off.
          await waitFor('it to fill its share', async () => (await agent.output()).kept >= 1.5 * MiB, 15_000);
          for (let i = 0; i < 3; i++) stalled.push(await spawnStalled(agent.procs, ['yes', `other ${i}`]));
          await waitFor('its exit', () => events.some((e) => 'exit' in e), 20_000, 100);
        } finally {
          clearInterval(keepalive);
        }
        assert.ok(!events.some((e) => 'cut' in e), 'no cut event for a master that did not ask for them');
        const exit = events.find((e) => 'exit' in e);
        assert.ok(exit && 'exit' in exit);
        assert.ok(exit.exit.signal !== null || exit.exit.code !== 0, JSON.stringify(exit.exit));
        assert.ok((await agent.output()).cuts >= 1);
        await agent.client.call('proc.credit', { procId, bytes: 0, received: exit.seq + 1 }).catch(() => undefined);
      } finally {
        sub.stop();
      }
    });
  });
});
