/**
 * The device bench: how long a one-byte echo takes through a terminal on the slave, by
 * splitbrain's device mount next to socat over loopback TCP and the terminal itself. The timed
 * client (bench/echo-client.py) is a process of its own that only reads and writes: never this
 * one, which must not do I/O on a FUSE mount it waits for, and a Python loop's cost is the
 * same on every route. It runs the routes one after the other (its header says why).
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cleanup } from './cleanup.js';
import { startEchoRoutes, type EchoRouteId } from './echo-routes.js';
import { describeFailure } from './fs-bench.js';
import { CommandFailedError, runArgv } from './run-command.js';
import { median } from './stats.js';

const CLIENT = fileURLToPath(new URL('../../bench/echo-client.py', import.meta.url));
/**
 * Untimed round trips before the timed ones, on every route. Node's processes (the relays of
 * splitbrain and of the raw nats.js route) run their per-byte code unoptimised at first: measured
 * on splitbrain's route, the median of each 500 rounds falls from 600-680 µs to about 200 µs over
 * the first 1,500 and stays there. A mount or sidecar lives for many sessions, so the warm figure
 * is what a test sees; the first COLD_ROUNDS are reported too, in a row of their own.
 */
export const DEFAULT_ECHO_WARM_UP = 2000;
/** Of the untimed rounds, the first this many are kept: a cold process's figure. */
export const COLD_ROUNDS = 500;
/** Generous: a slow route still fits, a stuck one is ended by the client's own watchdog first. */
const CLIENT_BASE_TIMEOUT_MS = 60_000;
const CLIENT_TIMEOUT_PER_ROUND_MS = 50;

export class EchoResultsError extends Error {
  override name = 'EchoResultsError';
}

export interface EchoResult {
  /** Microseconds, one per round trip that came back right. */
  samplesUs: number[];
  /** Why the route stopped before its last round, if it did. */
  failure?: string;
  /** The first untimed round trips (up to COLD_ROUNDS), right after the route's processes started. */
  coldUs: number[];
}

export interface DeviceBenchResults {
  rounds: number;
  warmUp: number;
  startErrors: Map<EchoRouteId, string>;
  echo: Map<EchoRouteId, EchoResult>;
  /** Of the agent and the mount, read for warnings after the run. */
  logs: { label: string; path: string }[];
}

interface ClientRoute {
  samples_us: number[];
  cold_us: number[];
  failure: string | null;
}

function isClientRoute(v: unknown): v is ClientRoute {
  if (typeof v !== 'object' || v === null) return false;
  const { samples_us: samples, cold_us: cold, failure } = v as Record<string, unknown>;
  const numbers = (list: unknown) => Array.isArray(list) && list.every((s) => typeof s === 'number');
  return numbers(samples) && numbers(cold) && (failure === null || typeof failure === 'string');
}

/** The client's output file, one entry per route it was given. */
function parseClientResults(text: string, ids: EchoRouteId[]): Map<EchoRouteId, EchoResult> {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null) throw new EchoResultsError('echo client: results are not an object');
  const byId = parsed as Record<string, unknown>;
  return new Map(ids.map((id) => {
    const entry = byId[id];
    if (!isClientRoute(entry)) throw new EchoResultsError(`echo client: no well-formed results for ${id}`);
    return [id, { samplesUs: entry.samples_us, coldUs: entry.cold_us, ...(entry.failure !== null ? { failure: entry.failure } : {}) }];
  }));
}

/** Starts the routes' far sides, runs the client once over all of them, and stops them again. */
export async function measureDeviceBench(
  config: { workDir: string; natsUrl: string; rounds: number; warmUp: number }, cleanup: Cleanup, progress: (line: string) => void,
): Promise<DeviceBenchResults> {
  const { routes, startErrors, daemons, logs } = await startEchoRoutes(config.workDir, config.natsUrl, cleanup);
  try {
    for (const [id, error] of startErrors) progress(`[device] ${id} could not start: ${error}`);
    const echo = new Map<EchoRouteId, EchoResult>();
    if (routes.length === 0) return { rounds: config.rounds, warmUp: config.warmUp, startErrors, echo, logs };
    progress(`[device] ${config.rounds} one-byte round trips (after ${config.warmUp} untimed) on `
      + routes.map((r) => `${r.id} (${r.where})`).join(', '));
    const outPath = join(config.workDir, 'echo-results.json');
    await rm(outPath, { force: true });
    const argv = ['python3', CLIENT, outPath, String(config.rounds), String(config.warmUp), String(COLD_ROUNDS),
      ...routes.map((r) => `${r.id}=${r.where}`)];
    const timeoutMs = CLIENT_BASE_TIMEOUT_MS + (config.rounds + config.warmUp) * routes.length * CLIENT_TIMEOUT_PER_ROUND_MS;
    try {
      await runArgv(argv, { timeoutMs });
    } catch (err) {
      // Its watchdog ends it with what it measured written out: that still counts.
      if (!(err instanceof CommandFailedError)) throw err;
      progress(`[device] echo client: ${err.message}`);
    }
    const text = await readFile(outPath, 'utf8').catch((err: unknown) => {
      throw new EchoResultsError(`echo client wrote no results: ${describeFailure(err)}`, { cause: err });
    });
    for (const [id, result] of parseClientResults(text, routes.map((r) => r.id))) {
      echo.set(id, result);
      const failed = result.failure !== undefined ? `; FAILED: ${result.failure}` : '';
      progress(`[device] ${id}: ${result.samplesUs.length} round trips, median ${median(result.samplesUs).toFixed(1)} µs${failed}`);
    }
    return { rounds: config.rounds, warmUp: config.warmUp, startErrors, echo, logs };
  } finally {
    for (const daemon of [...daemons].reverse()) await daemon.stop();
  }
}
