/**
 * `npm run bench`: starts everything on loopback, measures the raw transport floor, the
 * FUSE floor, the process bench (the exec shim and CLI next to ssh and a local shell), the
 * device bench (a one-byte echo through a pty by the device mount, next to socat over TCP) and
 * the filesystem workloads on splitbrain, sshfs, bindfs and the local disk, prints one report and
 * rewrites docs/performance.md; then the single calls, by depth, and coherence on the same targets.
 * Env: BENCH_RUNS (3), BENCH_SIZE_MB (256), BENCH_EXEC_RUNS (200), BENCH_ECHO_ROUNDS (1000), BENCH_ECHO_WARMUP (2000),
 * BENCH_CALL_ITERATIONS (300), BENCH_COHERENCE_CHANGES (200), BENCH_SPLITBRAIN_OPTS.
 * `--only calls`: start the targets and run that last part alone; only its section of the doc is
 * rewritten. Then the cluster part (cluster-bench.ts: a leaf node, memory, a load test with
 * BENCH_LOAD_SECONDS, default 20), also alone with `--only cluster`; the agent memory part
 * (memory-bench.ts: an idle agent, and one with 100 stalled readers), alone with `--only memory`;
 * the device bench alone with `--only devices`.
 * The stream part (stream-bench.ts: stdout, sequential write and read against the raw floor, with
 * CPU per GiB), after the device bench, also alone with `--only streams`.
 * The delayed-link part (delayed-link-bench.ts: the workloads and single calls on splitbrain and
 * sshfs through a delay proxy of D ms each way, for each D of BENCH_DELAYS, default "1,5", with
 * BENCH_DELAYED_CALL_ITERATIONS calls, default 100), after the calls, also alone with `--only delayed`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startBindfs } from './bindfs-target.js';
import { Cleanup, cleanUpOnSignals } from './cleanup.js';
import { measureCallBench, type CallBenchResults } from './call-bench.js';
import { renderCallSection, type CallSection } from './call-table.js';
import { measureCallerBench, type CallerBenchResults } from './caller-bench.js';
import { measureClusterBench, renderClusterSection, type ClusterBenchResults } from './cluster-bench.js';
import { measureCoherence, type CoherenceResults } from './coherence-bench.js';
import { DEFAULT_ECHO_WARM_UP, measureDeviceBench, type DeviceBenchResults } from './device-bench.js';
import { renderDeviceSection } from './device-table.js';
import { measureExecBench, type ExecBenchResults } from './exec-bench.js';
import { makeFixtures } from './fixtures.js';
import { runFsBench, type FsBenchResults } from './fs-bench.js';
import { measureFuseFloor, type FuseFloorResult } from './fuse-floor.js';
import { measureMemoryBench, renderMemorySection, type MemoryBenchResults } from './memory-bench.js';
import { logExcerpts } from './log-excerpts.js';
import { describeMachine, loadAverage } from './machine-info.js';
import { mountsUnder } from './mount-table.js';
import { startNatsServer } from './nats-server.js';
import { renderStreamSection } from './stream-table.js';
import { measureStreamBench, type StreamBenchResults } from './stream-bench.js';
import { markPart, PERFORMANCE_DOC, writePerformanceDoc, writePerformanceDocPart } from './performance-doc.js';
import { renderReport, type BenchReport } from './report-table.js';
import { stopAllCommands } from './run-command.js';
import { startSplitbrain } from './splitbrain-target.js';
import { measureDelayedLink, type DelayedLinkResults } from './delayed-link-bench.js';
import { renderDelayedSection } from './delayed-table.js';
import { startSshd } from './sshd.js';
import { startSshfs } from './sshfs-target.js';
import { localTarget, type Target, type TargetName } from './target.js';
import { measureTransportFloor, type FloorResult } from './transport-floor.js';

class BenchConfigError extends Error {
  override name = 'BenchConfigError';
}

function envInt(name: string, fallback: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new BenchConfigError(`${name} must be a whole number from 1 to ${max}, got '${raw}'`);
  }
  return n;
}

/** Parts that `--only` can run alone. */
const PARTS = ['calls', 'cluster', 'delayed', 'devices', 'memory', 'streams'] as const;
type Part = (typeof PARTS)[number];

function onlyPart(args: readonly string[]): Part | undefined {
  if (args.length === 0) return undefined;
  const [flag, part, ...rest] = args;
  const known = PARTS.find((p) => p === part);
  if (flag !== '--only' || known === undefined || rest.length > 0) {
    throw new BenchConfigError(`usage: run.js [--only ${PARTS.join('|')}], got '${args.join(' ')}'`);
  }
  return known;
}

/** BENCH_DELAYS: the one-way delays of the delayed-link part, in ms, comma separated. */
function delaysFromEnv(text: string): number[] {
  const delays = text.split(',').map((d) => Number(d.trim()));
  if (delays.length === 0 || delays.some((d) => !Number.isFinite(d) || d <= 0 || d > 1000)) {
    throw new BenchConfigError(`BENCH_DELAYS must be delays in ms (0 < D <= 1000) separated by commas, got '${text}'`);
  }
  return delays;
}

const t0 = performance.now();
function progress(line: string): void {
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
}

async function main(): Promise<void> {
  const runs = envInt('BENCH_RUNS', 3, 50);
  const sizeMb = envInt('BENCH_SIZE_MB', 256, 16_384);
  const execRuns = envInt('BENCH_EXEC_RUNS', 200, 100_000);
  const echoRounds = envInt('BENCH_ECHO_ROUNDS', 1000, 1_000_000);
  const echoWarmUp = envInt('BENCH_ECHO_WARMUP', DEFAULT_ECHO_WARM_UP, 1_000_000);
  const callIterations = envInt('BENCH_CALL_ITERATIONS', 300, 100_000);
  const coherenceChanges = envInt('BENCH_COHERENCE_CHANGES', 200, 10_000);
  const splitbrainOptions = process.env.BENCH_SPLITBRAIN_OPTS ?? '';
  const loadSeconds = envInt('BENCH_LOAD_SECONDS', 20, 3600);
  const delayedCallIterations = envInt('BENCH_DELAYED_CALL_ITERATIONS', 100, 100_000);
  const delaysMs = delaysFromEnv(process.env.BENCH_DELAYS ?? '1,5');
  const only = onlyPart(process.argv.slice(2));
  const full = only === undefined;
  const mainParts = only === undefined || only === 'calls';
  if (process.getuid?.() !== 0) {
    progress('warning: not root: dropping caches (cold tests), sshd and untar ownership will fail');
  }

  const loadAtStart = loadAverage();
  const cleanup = new Cleanup();
  let interrupted = false;
  cleanUpOnSignals(cleanup, () => {
    interrupted = true;
    stopAllCommands();
  });
  const workDir = await mkdtemp(join(tmpdir(), 'splitbrain-bench-'));
  cleanup.add(`remove ${workDir}`, async () => {
    // Never recurse into a mount that is still there: rm would delete what is behind it.
    const left = await mountsUnder(workDir);
    if (left.length > 0) throw new Error(`still mounted, not removing ${workDir}: ${left.join(', ')}`);
    await rm(workDir, { recursive: true, force: true });
  });

  const startErrors = new Map<TargetName, string>();
  const logs: string[] = [];
  let floor: FloorResult | undefined;
  let floorError: string | undefined;
  let fuseFloor: FuseFloorResult | undefined;
  let fuseFloorError: string | undefined;
  let exec: ExecBenchResults | undefined;
  let execError: string | undefined;
  let device: DeviceBenchResults | undefined;
  let deviceError: string | undefined;
  let deviceHeading = '';
  let fs: FsBenchResults | undefined;
  let callers: CallerBenchResults | undefined;
  let callersError: string | undefined;
  let coldWaits = '';
  let calls: CallBenchResults | undefined;
  let callsError: string | undefined;
  let coherence: CoherenceResults | undefined;
  let coherenceError: string | undefined;
  let callsStarted = 0;
  let callsLoad = '';
  let cluster: ClusterBenchResults | undefined;
  let clusterError: string | undefined;
  let clusterHeading = '';
  let memory: MemoryBenchResults | undefined;
  let memoryError: string | undefined;
  let memoryHeading = '';
  let streams: StreamBenchResults | undefined;
  let streamsError: string | undefined;
  let streamsHeading = '';
  let delayed: DelayedLinkResults | undefined;
  let delayedError: string | undefined;
  let delayedHeading = '';
  try {
    const withFixtures = full || only === 'cluster' || only === 'streams' || only === 'delayed';
    progress(`work dir ${workDir}${withFixtures ? `; making fixtures (${sizeMb} MiB random file, npm tarball)` : ''}`);
    const fixtures = withFixtures ? await makeFixtures(workDir, sizeMb) : undefined;
    const nats = await startNatsServer(workDir, cleanup);
    progress(`nats-server at ${nats.url} (pid ${nats.daemon.pid})`);

    // One sshd for the ssh rows of the process bench and for sshfs; if it fails, both say so.
    const sshd = mainParts || only === 'delayed' ? await startSshd(workDir, cleanup).catch((err: unknown) => err as Error) : new Error(`not started: --only ${only ?? ''}`);
    if (sshd instanceof Error && (mainParts || only === 'delayed')) progress(`sshd could not start: ${sshd.message}`);
    // First, while this process is small: every timed run is a fork of it, and a fork costs more
    // the more memory it maps (the transport floor's buffers double it), in every latency figure.
    if (fixtures && full) {
      try {
        exec = await measureExecBench({ workDir, natsUrl: nats.url, sshd, sizeBytes: fixtures.sizeBytes, runs, latencyRuns: execRuns },
          cleanup, progress);
        for (const log of exec.logs) logs.push(...(await logExcerpts(log.label, log.path)));
      } catch (err) {
        execError = (err as Error).message;
        progress(`process bench failed: ${execError}`);
      }
    }
    if (full || only === 'devices') {
      const started = performance.now();
      const load = loadAverage();
      try {
        device = await measureDeviceBench({ workDir, natsUrl: nats.url, rounds: echoRounds, warmUp: echoWarmUp }, cleanup, progress);
        for (const log of device.logs) logs.push(...(await logExcerpts(log.label, log.path)));
      } catch (err) {
        deviceError = (err as Error).message;
        progress(`device bench failed: ${deviceError}`);
      }
      const machine = await describeMachine();
      deviceHeading = `Measured ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} on ${machine.machine} by \`${full ? 'npm run bench' : 'npm run bench -- --only devices'}\`, `
        + `${echoRounds} rounds per route after ${echoWarmUp} untimed; this part took ${((performance.now() - started) / 1000).toFixed(0)} s, load average ${load} at its start, ${loadAverage()} at its end.`;
    }
    if (fixtures && (full || only === 'streams')) {
      const started = performance.now();
      const load = loadAverage();
      try {
        streams = await measureStreamBench({ workDir, nats, fixtures, runs, splitbrainOptions }, cleanup, progress);
        for (const log of streams.logs) logs.push(...(await logExcerpts(log.label, log.path)));
      } catch (err) {
        streamsError = (err as Error).message;
        progress(`stream part failed: ${streamsError}`);
      }
      const machine = await describeMachine();
      streamsHeading = `Measured ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} on ${machine.machine} by \`${full ? 'npm run bench' : 'npm run bench -- --only streams'}\`, `
        + `${fixtures.sizeBytes / 2 ** 20} MiB per stream, ${runs} passes, splitbrain mount options: ${splitbrainOptions || 'defaults'}; `
        + `this part took ${((performance.now() - started) / 1000).toFixed(0)} s, load average ${load} at its start, ${loadAverage()} at its end.`;
    }
    if (fixtures && full) {
      try {
        floor = await measureTransportFloor(nats.url, workDir, fixtures.sizeBytes, runs, cleanup, progress);
      } catch (err) {
        floorError = (err as Error).message;
        progress(`transport floor failed: ${floorError}`);
      }
      try {
        fuseFloor = await measureFuseFloor(workDir, fixtures, splitbrainOptions, runs, cleanup, progress);
      } catch (err) {
        fuseFloorError = (err as Error).message;
        progress(`FUSE floor failed: ${fuseFloorError}`);
      }
    }

    const starters: [TargetName, () => Promise<Target>][] = [
      ['splitbrain', () => startSplitbrain(workDir, nats.url, splitbrainOptions, cleanup)],
      ['sshfs', () => (sshd instanceof Error ? Promise.reject(sshd) : startSshfs(workDir, sshd, cleanup))],
      ['bindfs', () => startBindfs(workDir, cleanup)],
      ['local', () => localTarget(workDir)],
    ];
    const targets: Target[] = [];
    for (const [name, start] of mainParts ? starters : []) {
      try {
        targets.push(await start());
        progress(`${name} ready`);
      } catch (err) {
        startErrors.set(name, (err as Error).message);
        progress(`${name} could not start: ${(err as Error).message}`);
      }
    }
    coldWaits = targets.map((t) => `${t.name} ${t.userspaceCacheMs / 1000} s`).join(', ');
    if (fixtures && full) {
      fs = await runFsBench(targets, fixtures, runs, progress);
      try {
        callers = await measureCallerBench(workDir, nats.url, runs, cleanup, progress);
      } catch (err) {
        callersError = (err as Error).message;
        progress(`caller bench failed: ${callersError}`);
      }
    }
    callsStarted = performance.now();
    callsLoad = loadAverage();
    if (mainParts) {
      try {
        calls = await measureCallBench(targets, callIterations, progress, true);
      } catch (err) {
        callsError = (err as Error).message;
        progress(`call bench failed: ${callsError}`);
      }
      try {
        coherence = await measureCoherence(targets, coherenceChanges, progress);
      } catch (err) {
        coherenceError = (err as Error).message;
        progress(`coherence bench failed: ${coherenceError}`);
      }
    }
    for (const target of targets) {
      for (const log of target.logs) logs.push(...(await logExcerpts(log.label, log.path)));
    }
    if (fixtures && (full || only === 'delayed')) {
      const started = performance.now();
      const load = loadAverage();
      try {
        delayed = await measureDelayedLink({
          workDir, sshd, fixtures, runs, callIterations: delayedCallIterations, delaysMs, splitbrainOptions,
        }, cleanup, progress);
      } catch (err) {
        delayedError = (err as Error).message;
        progress(`delayed-link part failed: ${delayedError}`);
      }
      const machine = await describeMachine();
      delayedHeading = `Measured ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} on ${machine.machine} by \`${full ? 'npm run bench' : 'npm run bench -- --only delayed'}\`, `
        + `${runs} pass${runs === 1 ? '' : 'es'}, ${delayedCallIterations} calls per single call, splitbrain mount options: ${splitbrainOptions || 'defaults'}; `
        + `this part took ${((performance.now() - started) / 1000).toFixed(0)} s, load average ${load} at its start, ${loadAverage()} at its end.`;
    }
    if (fixtures && (full || only === 'cluster')) {
      const started = performance.now();
      const load = loadAverage();
      try {
        cluster = await measureClusterBench(workDir, fixtures, runs, loadSeconds, cleanup, progress);
      } catch (err) {
        clusterError = (err as Error).message;
        progress(`cluster bench failed: ${clusterError}`);
      }
      const machine = await describeMachine();
      clusterHeading = `Measured ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} on ${machine.machine} by \`${full ? 'npm run bench' : 'npm run bench -- --only cluster'}\`; `
        + `this part took ${((performance.now() - started) / 1000).toFixed(0)} s, load average ${load} at its start, ${loadAverage()} at its end.`;
    }
    if (full || only === 'memory') {
      const load = loadAverage();
      try {
        memory = await measureMemoryBench(workDir, nats.url, cleanup, progress);
      } catch (err) {
        memoryError = (err as Error).message;
        progress(`memory bench failed: ${memoryError}`);
      }
      const machine = await describeMachine();
      memoryHeading = `Measured ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} on ${machine.machine} by \`${full ? 'npm run bench' : 'npm run bench -- --only memory'}\`; `
        + `this part took ${(memory?.durationS ?? 0).toFixed(0)} s, load average ${load} at its start, ${loadAverage()} at its end.`;
    }
  } finally {
    progress('cleaning up');
    await cleanup.runAll();
  }

  // The signal handler exits once its cleanup is done; partial results must not reach the doc.
  if (interrupted) return new Promise<void>(() => undefined);
  const machine = await describeMachine();
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const section: CallSection = {
    date, machine: machine.machine, command: full ? 'npm run bench' : `npm run bench -- --only ${only}`,
    durationS: (performance.now() - callsStarted) / 1000, load: [callsLoad, loadAverage()], startErrors,
    calls, callsError, coherence, coherenceError,
  };
  // Every part's section, rendered for the doc: alone (--only), or within the whole report.
  const sections: Record<Part, () => string> = {
    calls: () => renderCallSection(section),
    cluster: () => renderClusterSection(cluster, clusterError, clusterHeading),
    delayed: () => renderDelayedSection(delayed, delayedError, delayedHeading),
    devices: () => renderDeviceSection(device, deviceError, deviceHeading),
    memory: () => renderMemorySection(memory, memoryError, memoryHeading),
    streams: () => renderStreamSection(streams, streamsError, streamsHeading),
  };
  if (only !== undefined) {
    const text = sections[only]();
    process.stdout.write(`\n${text}\n`);
    await writePerformanceDocPart(only, text);
    progress(`rewrote the ${only} section of ${PERFORMANCE_DOC}`);
    return;
  }
  const report: BenchReport = {
    date, machine: machine.machine, tools: machine.tools,
    sizeMb, runs, splitbrainOptions, durationS: (performance.now() - t0) / 1000, load: [loadAtStart, loadAverage()],
    coldWaits, startErrors, fs, floor, floorError, fuseFloor, fuseFloorError, exec, execError,
    deviceSection: markPart('devices', sections.devices()),
    callers, callersError, callSection: markPart('calls', sections.calls()),
    streamSection: markPart('streams', sections.streams()),
    delayedSection: markPart('delayed', sections.delayed()),
    clusterSection: markPart('cluster', sections.cluster()),
    memorySection: markPart('memory', sections.memory()),
    logExcerpts: logs,
  };
  const text = renderReport(report);
  process.stdout.write(`\n${text}\n`);
  await writePerformanceDoc(text);
  progress(`wrote ${PERFORMANCE_DOC}`);
}

try {
  await main();
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
