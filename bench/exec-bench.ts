/**
 * The process bench: how long a command takes to run on the slave, and how fast its stdout comes
 * back, through splitbrain's exec shim and CLI next to ssh and a plain local shell. Latency is
 * `true` run `latencyRuns` times in a row per route; throughput is `head -c SIZE /dev/zero`
 * piped into `wc -c`, `runs` times. Runs are interleaved over the routes (run 1 on every route,
 * then run 2, ...) so that other load on the machine spreads over all of them alike.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startBridgeRoutes } from './bridge-routes.js';
import type { Cleanup } from './cleanup.js';
import type { Daemon } from './daemon.js';
import { ROUTE_IDS, localRoute, type Route, type RouteId } from './exec-routes.js';
import { describeFailure, type Outcome } from './fs-bench.js';
import { CommandTimeoutError, runArgv, runCommand, sh } from './run-command.js';
import { startSshRoutes } from './ssh-routes.js';
import type { Sshd } from './sshd.js';
import { median } from './stats.js';

/** A Node process per run costs ~0.3 s: the CLI gets fewer latency runs, spread over the series. */
export const EXEC_CLI_RUNS = 50;
const WARM_UP_RUNS = 3;
const TRUE_TIMEOUT_MS = 30_000;

/** The streaming command itself (not the `wc -c` after it) exited with a failure. */
export class StreamStatusError extends Error {
  override name = 'StreamStatusError';
}

export interface ExecBenchConfig {
  workDir: string;
  natsUrl: string;
  /** The run's sshd, or why it did not start. */
  sshd: Sshd | Error;
  sizeBytes: number;
  runs: number;
  latencyRuns: number;
}

export interface LatencyResult {
  /** How many timed runs were planned. */
  planned: number;
  /** Milliseconds, one per successful run. */
  samplesMs: number[];
  failures: string[];
  /** Set when a timeout or a failed warm-up took the route out of the series. */
  retired?: string;
}

export interface ExecNote {
  route: RouteId;
  message: string;
}

export interface ExecBenchResults {
  sizeBytes: number;
  runs: number;
  latencyRuns: number;
  startErrors: Map<RouteId, string>;
  latency: Map<RouteId, LatencyResult>;
  /** MB/s, one per run. */
  stream: Map<RouteId, Outcome[]>;
  /** Failed byte-count checks: the run's figure stands, its cell gets a mark. */
  notes: ExecNote[];
  /** Of the agent and the bridge, read for warnings after the run. */
  logs: { label: string; path: string }[];
}

function plannedRuns(route: Route, latencyRuns: number): number {
  return route.id === 'exec-cli' ? Math.min(EXEC_CLI_RUNS, latencyRuns) : latencyRuns;
}

/** Whether run `i` (0-based) of `total` is one of the `planned` ones, spread evenly over them. */
function scheduled(i: number, total: number, planned: number): boolean {
  return Math.floor(((i + 1) * planned) / total) > Math.floor((i * planned) / total);
}

async function measureLatency(
  routes: Route[], latencyRuns: number, progress: (line: string) => void,
): Promise<Map<RouteId, LatencyResult>> {
  const results = new Map<RouteId, LatencyResult>(
    routes.map((r) => [r.id, { planned: plannedRuns(r, latencyRuns), samplesMs: [], failures: [] }]));
  // Untimed: the first runs load programs and libraries, and open what a route keeps open.
  for (const route of routes) {
    try {
      for (let i = 0; i < WARM_UP_RUNS; i++) await runArgv(route.trueArgv, { timeoutMs: TRUE_TIMEOUT_MS, env: route.env });
    } catch (err) {
      const result = results.get(route.id) as LatencyResult;
      result.retired = `warm-up failed: ${describeFailure(err)}`;
      progress(`[exec] ${route.id} warm-up FAILED: ${(err as Error).message}`);
    }
  }
  for (let i = 0; i < latencyRuns; i++) {
    for (const route of routes) {
      const result = results.get(route.id) as LatencyResult;
      if (result.retired !== undefined || !scheduled(i, latencyRuns, result.planned)) continue;
      try {
        const { ms } = await runArgv(route.trueArgv, { timeoutMs: TRUE_TIMEOUT_MS, env: route.env });
        result.samplesMs.push(ms);
      } catch (err) {
        result.failures.push(describeFailure(err));
        progress(`[exec] ${route.id} true, run ${i + 1}: FAILED: ${(err as Error).message}`);
        // A hung route would only hang the rest of the series.
        if (err instanceof CommandTimeoutError) result.retired = `timeout (${err.timeoutMs / 1000} s)`;
      }
    }
    if ((i + 1) % 50 === 0 || i + 1 === latencyRuns) {
      const medians = routes.map((r) => `${r.id} ${median(results.get(r.id)?.samplesMs ?? []).toFixed(1)}`);
      progress(`[exec] true ${i + 1}/${latencyRuns}, median ms so far: ${medians.join(', ')}`);
    }
  }
  return results;
}

async function measureStream(
  routes: Route[], config: ExecBenchConfig, notes: ExecNote[], progress: (line: string) => void,
): Promise<Map<RouteId, Outcome[]>> {
  const { sizeBytes, runs } = config;
  const outcomes = new Map<RouteId, Outcome[]>(routes.map((r) => [r.id, []]));
  // Half a MB/s is a failure worth reporting, not waiting for.
  const timeoutMs = Math.max(120_000, (sizeBytes / 1e6) * 2000);
  // A pipeline's status is its last command's: the producer's own goes through a file.
  const statusFile = join(config.workDir, 'exec-stream.status');
  const retired = new Set<RouteId>();
  for (let run = 1; run <= runs; run++) {
    for (const route of routes) {
      const record = (o: Outcome) => outcomes.get(route.id)?.push(o);
      if (retired.has(route.id)) {
        record({ ok: false, skipped: true, reason: 'timed out earlier' });
        continue;
      }
      const where = `[exec] [pass ${run}/${runs}] ${route.id.padEnd(8)} stdout`;
      try {
        await rm(statusFile, { force: true });
        const script = `{ ${route.stream(sizeBytes)}; echo $? > ${sh(statusFile)}; } | wc -c`;
        const { ms, stdout } = await runCommand(script, { timeoutMs, env: route.env });
        const status = (await readFile(statusFile, 'utf8')).trim();
        if (status !== '0') throw new StreamStatusError(`head exited ${status}`);
        const mbps = sizeBytes / 1e6 / (ms / 1000);
        record({ ok: true, value: mbps });
        const received = stdout.trim();
        if (received !== String(sizeBytes)) {
          notes.push({ route: route.id, message: `stdout: received ${received} bytes, expected ${sizeBytes}` });
        }
        progress(`${where} ${mbps.toFixed(0)} MB/s${received === String(sizeBytes) ? '' : ` (received ${received} bytes!)`}`);
      } catch (err) {
        record({ ok: false, skipped: false, reason: describeFailure(err) });
        progress(`${where} FAILED: ${(err as Error).message}`);
        if (err instanceof CommandTimeoutError) retired.add(route.id);
      }
    }
  }
  return outcomes;
}

/** Starts the routes' far sides, measures, and stops them again; a route that cannot start is reported. */
export async function measureExecBench(
  config: ExecBenchConfig, cleanup: Cleanup, progress: (line: string) => void,
): Promise<ExecBenchResults> {
  const startErrors = new Map<RouteId, string>();
  const routes: Route[] = [localRoute()];
  const daemons: Daemon[] = [];
  const logs: ExecBenchResults['logs'] = [];
  try {
    try {
      const bridge = await startBridgeRoutes(config.workDir, config.natsUrl, cleanup);
      routes.push(...bridge.routes);
      daemons.push(...bridge.daemons);
      logs.push(...bridge.logs);
    } catch (err) {
      for (const id of ['shim', 'exec-cli'] as const) startErrors.set(id, (err as Error).message);
    }
    if (config.sshd instanceof Error) {
      for (const id of ['ssh', 'ssh-cm'] as const) startErrors.set(id, `sshd: ${config.sshd.message}`);
    } else {
      try {
        const ssh = await startSshRoutes(config.workDir, config.sshd, cleanup);
        routes.push(...ssh.routes);
        daemons.push(...ssh.daemons);
        if (ssh.masterError !== undefined) startErrors.set('ssh-cm', ssh.masterError);
      } catch (err) {
        for (const id of ['ssh', 'ssh-cm'] as const) startErrors.set(id, (err as Error).message);
      }
    }
    for (const [id, error] of startErrors) progress(`[exec] ${id} could not start: ${error}`);
    routes.sort((a, b) => ROUTE_IDS.indexOf(a.id) - ROUTE_IDS.indexOf(b.id));
    // Our size is printed because each run's fork copies our page tables: it is in every figure.
    progress(`[exec] ${config.latencyRuns} × true (the CLI ${Math.min(EXEC_CLI_RUNS, config.latencyRuns)}) `
      + `on ${routes.map((r) => r.id).join(', ')}; bench process RSS ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`);
    const latency = await measureLatency(routes, config.latencyRuns, progress);
    const notes: ExecNote[] = [];
    const stream = await measureStream(routes, config, notes, progress);
    return { sizeBytes: config.sizeBytes, runs: config.runs, latencyRuns: config.latencyRuns, startErrors, latency, stream, notes, logs };
  } finally {
    for (const daemon of daemons) await daemon.stop();
  }
}
