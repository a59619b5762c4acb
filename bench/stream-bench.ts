/**
 * The stream part (issue 22): a bridged command's stdout and the mount's sequential write and
 * cold read, next to the raw nats.js floor they run on, side by side in one run, with the CPU
 * every process spends per GiB moved and the messages nats-server carries per MiB. Each pass
 * runs every stream once (floor read, floor write, stdout, write, read), so load from elsewhere
 * on the machine spreads over all of them alike. Alone: `npm run bench -- --only streams`.
 *
 *   floor:  bench (requester) <--1 MiB replies / requests--> nats-server <--> floor responder
 *   stdout: head on the slave --> agent --events--> bridge's session link --> bridge --frames--> shim --> wc
 *   write:  dd --FUSE--> mount --fs.write--> mount's session link --> agent --> slave's disk
 *   read:   slave's disk --> agent --fs.read replies--> mount's session link --> mount --FUSE--> dd
 * (each on the bus, through nats-server, until its session link is made: transport/session-link.ts)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startBridgeRoutes } from './bridge-routes.js';
import type { Cleanup } from './cleanup.js';
import type { Fixtures } from './fixtures.js';
import { describeFailure } from './fs-bench.js';
import { sequentialCommands } from './fs-workloads.js';
import type { NatsServer, ServerCounts } from './nats-server.js';
import { dropCaches } from './page-cache.js';
import { childrenCpuSeconds, cpuMeter } from './process-cpu.js';
import { runCommand, sh } from './run-command.js';
import { linkFrames } from './link-frames.js';
import { startSplitbrain } from './splitbrain-target.js';
import type { Target } from './target.js';
import { startFloor, type FloorSession } from './transport-floor.js';

export const STREAM_IDS = ['floor-read', 'floor-write', 'stdout', 'mount-write', 'mount-read'] as const;
export type StreamId = (typeof STREAM_IDS)[number];

/** Processes whose CPU is read from /proc (the bench's own is `bench`, the programs' from `times`). */
export type ProcessName = 'bench' | 'floor responder' | 'nats-server' | 'exec agent' | 'bridge' | 'fs agent'
  | 'change watcher' | 'mount' | 'shim' | 'dd';

export interface StreamSample {
  /** Which pass (from 1): a stream is held against the floor measured in the same pass. */
  pass: number;
  bytes: number;
  seconds: number;
  /** CPU seconds each process spent on this sample. */
  cpu: Map<ProcessName, number>;
  /** Messages published to nats-server during the sample. */
  messages: number;
}

export interface StreamBenchResults {
  sizeBytes: number;
  runs: number;
  samples: Map<StreamId, StreamSample[]>;
  failures: Map<StreamId, string[]>;
  /** Failed data checks (first pass). */
  notes: string[];
  logs: { label: string; path: string }[];
}

export interface StreamBenchConfig {
  workDir: string;
  nats: NatsServer;
  fixtures: Fixtures;
  runs: number;
  splitbrainOptions: string;
}

const STREAM_AGENT = 'bench-streams';
const EXEC_AGENT = 'bench-streams-exec';

/** The agent's change watcher (agent/backends/linux/watcher), a child process of its own; its name as /proc shows it (15 characters). */
function watcherOf(agentPid: number): number | undefined {
  for (const task of readdirSync(`/proc/${agentPid}/task`)) {
    const children = readFileSync(`/proc/${agentPid}/task/${task}/children`, 'utf8').trim();
    for (const child of children === '' ? [] : children.split(' ').map(Number)) {
      const name = readFileSync(`/proc/${child}/comm`, 'utf8').trim();
      if (name.startsWith('splitbrain-watc')) return child;
    }
  }
  return undefined;
}

interface Running {
  floor: FloorSession;
  shimStream: (bytes: number) => string;
  mount: Target;
  pids: Map<ProcessName, number>;
}

class StreamCheckError extends Error {
  override name = 'StreamCheckError';
}

/** Runs `step`, which returns the bytes it moved and the programs' CPU, and measures around it. */
async function measure(
  running: Running, nats: NatsServer, pass: number, step: () => Promise<{ bytes: number; programs: Map<ProcessName, number> }>,
): Promise<StreamSample> {
  // The mount's and the bridge's session links carry their requests (and the output) past the
  // server: their frames count as messages too.
  const allFrames = async (): Promise<number> => (await linkFrames(nats.url, STREAM_AGENT)) + (await linkFrames(nats.url, EXEC_AGENT));
  const framesBefore = await allFrames();
  const before: ServerCounts = await nats.counts();
  const meter = cpuMeter(running.pids);
  const started = performance.now();
  const { bytes, programs } = await step();
  const seconds = (performance.now() - started) / 1000;
  const cpu = meter() as Map<ProcessName, number>;
  const after = await nats.counts();
  const frames = (await allFrames()) - framesBefore;
  for (const [name, value] of programs) cpu.set(name, value);
  return { pass, bytes, seconds, cpu, messages: after.inMsgs - before.inMsgs + frames };
}

export async function measureStreamBench(
  config: StreamBenchConfig, cleanup: Cleanup, progress: (line: string) => void,
): Promise<StreamBenchResults> {
  const { workDir, nats, fixtures, runs } = config;
  const sizeBytes = fixtures.sizeBytes;
  const floor = await startFloor(nats.url, workDir, cleanup);
  const logs: StreamBenchResults['logs'] = [];
  let bridge: Awaited<ReturnType<typeof startBridgeRoutes>> | undefined;
  let mount: Target | undefined;
  try {
    bridge = await startBridgeRoutes(workDir, nats.url, cleanup, EXEC_AGENT);
    logs.push(...bridge.logs);
    mount = await startSplitbrain(workDir, nats.url, config.splitbrainOptions, cleanup, STREAM_AGENT);
    logs.push(...mount.logs);
    const shim = bridge.routes.find((r) => r.id === 'shim');
    if (!shim || !mount.pids) throw new StreamCheckError('the bridge gave no shim route, or the mount no pids');
    const pids = new Map<ProcessName, number>([
      ['nats-server', nats.daemon.pid], ['floor responder', floor.responderPid],
      ['exec agent', bridge.pids.agent], ['bridge', bridge.pids.bridge],
      ['fs agent', mount.pids.agent], ['mount', mount.pids.mount],
    ]);
    const watcher = watcherOf(mount.pids.agent);
    if (watcher !== undefined) pids.set('change watcher', watcher);
    const running: Running = { floor, shimStream: shim.stream, mount, pids };
    const shimEnv = shim.env;

    const samples = new Map<StreamId, StreamSample[]>(STREAM_IDS.map((id) => [id, []]));
    const failures = new Map<StreamId, string[]>(STREAM_IDS.map((id) => [id, []]));
    const notes: string[] = [];
    const count = Math.ceil(sizeBytes / floor.messageBytes);
    const seq = sequentialCommands(fixtures, mount.mountPath);
    const timesFile = join(workDir, 'streams.times');
    const statusFile = join(workDir, 'streams.status');
    const slaveBig = join(mount.slavePath, 'big');
    const programCpu = async (name: ProcessName) => new Map([[name, childrenCpuSeconds(await readFile(timesFile, 'utf8'))]]);

    const steps: Record<StreamId, (pass: number) => Promise<{ bytes: number; programs: Map<ProcessName, number> }>> = {
      'floor-read': async () => {
        await floor.read(count);
        return { bytes: count * floor.messageBytes, programs: new Map() };
      },
      'floor-write': async () => {
        await floor.write(count);
        return { bytes: count * floor.messageBytes, programs: new Map() };
      },
      'stdout': async () => {
        await rm(statusFile, { force: true });
        // The brace group is a subshell of its own: its `times` counts the shim alone, not wc.
        const script = `{ ${running.shimStream(sizeBytes)}; echo $? > ${sh(statusFile)}; times > ${sh(timesFile)}; } | wc -c`;
        const { stdout } = await runCommand(script, { timeoutMs: seq.timeoutMs, env: shimEnv });
        const status = (await readFile(statusFile, 'utf8')).trim();
        if (status !== '0') throw new StreamCheckError(`the bridged head exited ${status}`);
        if (stdout.trim() !== String(sizeBytes)) throw new StreamCheckError(`wc counted ${stdout.trim()} bytes, expected ${sizeBytes}`);
        return { bytes: sizeBytes, programs: await programCpu('shim') };
      },
      'mount-write': async () => {
        await runCommand(`${seq.write} && times > ${sh(timesFile)}`, { timeoutMs: seq.timeoutMs });
        return { bytes: sizeBytes, programs: await programCpu('dd') };
      },
      'mount-read': async () => {
        await runCommand(`${seq.read} && times > ${sh(timesFile)}`, { timeoutMs: seq.timeoutMs });
        return { bytes: sizeBytes, programs: await programCpu('dd') };
      },
    };
    // Untimed preparation and checks around the timed step.
    const before: Partial<Record<StreamId, () => Promise<void>>> = {
      'mount-write': async () => { await runCommand(seq.prepareWrite, { timeoutMs: seq.timeoutMs }); },
      // Cold: neither the mount's pages nor the slave's; the mount keeps no file data itself
      // (its attributes are no part of a read's throughput), so its cache is not waited out.
      'mount-read': () => dropCaches(),
    };
    const after: Partial<Record<StreamId, (pass: number) => Promise<void>>> = {
      'mount-write': async (pass) => {
        if (pass !== 1) return;
        const size = (await stat(slaveBig)).size;
        if (size !== sizeBytes) notes.push(`written file on the slave side: size ${size}, expected ${sizeBytes}`);
        else await runCommand(`cmp ${sh(fixtures.randomFile)} ${sh(slaveBig)}`, { timeoutMs: seq.timeoutMs })
          .catch((err: unknown) => notes.push(`written file on the slave side: ${(err as Error).message}`));
      },
      'mount-read': async (pass) => {
        if (pass === 1) {
          await dropCaches();
          await runCommand(`cmp ${sh(fixtures.randomFile)} ${sh(seq.big)}`, { timeoutMs: seq.timeoutMs })
            .catch((err: unknown) => notes.push(`file read back cold through the mount: ${(err as Error).message}`));
        }
        await rm(slaveBig, { force: true });
      },
    };

    for (let pass = 1; pass <= runs; pass++) {
      for (const id of STREAM_IDS) {
        const where = `[streams] [pass ${pass}/${runs}] ${id.padEnd(11)}`;
        if (id === 'mount-read' && (failures.get('mount-write')?.length ?? 0) >= pass) {
          failures.get(id)?.push('skipped: the write failed');
          continue;
        }
        try {
          await before[id]?.();
          const sample = await measure(running, nats, pass, () => steps[id](pass));
          samples.get(id)?.push(sample);
          const cpu = [...sample.cpu].filter(([, s]) => s >= 0.05).map(([n, s]) => `${n} ${s.toFixed(2)}`).join(', ');
          progress(`${where} ${(sample.bytes / 1e6 / sample.seconds).toFixed(0)} MB/s, `
            + `${(sample.messages / (sample.bytes / 2 ** 20)).toFixed(2)} msgs/MiB; CPU s: ${cpu}`);
          await after[id]?.(pass);
        } catch (err) {
          failures.get(id)?.push(describeFailure(err));
          progress(`${where} FAILED: ${(err as Error).message}`);
        }
      }
    }
    return { sizeBytes, runs, samples, failures, notes, logs };
  } finally {
    await mount?.stop?.();
    for (const daemon of bridge?.daemons ?? []) await daemon.stop();
    await floor.stop();
  }
}
