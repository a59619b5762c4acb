/**
 * The device bench's part of the report: one table with a column per route and splitbrain's
 * median as a multiple of socat's, the sentences that say how to read it, and its start errors,
 * as a section of its own. Issue 22's target: splitbrain's echo at most 3× socat → pty's.
 */
import { COLD_ROUNDS, type DeviceBenchResults, type EchoResult } from './device-bench.js';
import { ECHO_ROUTE_IDS, ECHO_ROUTE_LABELS, type EchoRouteId } from './echo-routes.js';
import { markdownTable } from './markdown-table.js';
import { median, percentile } from './stats.js';

function us(v: number): string {
  return `${v.toFixed(v < 100 ? 1 : 0)} µs`;
}

function echoCell(r: EchoResult | undefined, rounds: number, samples: (r: EchoResult) => number[]): { value?: number; text: string } {
  if (!r) return { text: 'not run' };
  const taken = samples(r);
  if (taken.length === 0) return { text: `fails (${r.failure ?? 'no round trips'})` };
  const m = median(taken);
  const partial = taken.length < rounds ? `, ${taken.length} of ${rounds} rounds` : '';
  const stopped = r.failure !== undefined ? `; stopped: ${r.failure}` : '';
  return { value: m, text: `${us(m)} (p90 ${us(percentile(taken, 90))}${partial}${stopped})` };
}

function times(a: number | undefined, b: number | undefined, what: string): string | undefined {
  return a === undefined || b === undefined || b <= 0 ? undefined : `${(a / b).toFixed(1)}× ${what}`;
}

/** One row: the cells of every route, and splitbrain's median against the others'. */
function echoRow(results: DeviceBenchResults, label: string, rounds: number, samples: (r: EchoResult) => number[]): string[] {
  const cells = new Map(ECHO_ROUTE_IDS.map((id: EchoRouteId) => [id,
    results.startErrors.has(id) ? { text: 'not started' } : echoCell(results.echo.get(id), rounds, samples)]));
  const splitbrain = cells.get('splitbrain')?.value;
  const ratios = [
    times(splitbrain, cells.get('socat-pty')?.value, 'socat → pty'),
    times(splitbrain, cells.get('socat-pipe')?.value, 'socat echo'),
    times(splitbrain, cells.get('nats-relay')?.value, 'the raw nats.js relay'),
  ].filter((t): t is string => t !== undefined);
  return [label, ...ECHO_ROUTE_IDS.map((id) => cells.get(id)?.text ?? ''), ratios.length > 0 ? ratios.join(', ') : '—'];
}

export function deviceTable(results: DeviceBenchResults): string {
  const cold = Math.min(results.warmUp, COLD_ROUNDS);
  const rows = [echoRow(results, `one-byte echo round trip: median (p90) of ${results.rounds} sequential, after ${results.warmUp} untimed`,
    results.rounds, (r) => r.samplesUs)];
  if (cold > 0) rows.push(echoRow(results, `the same, the first ${cold} (the route's processes just started)`, cold, (r) => r.coldUs));
  return markdownTable(['Device workload', ...ECHO_ROUTE_IDS.map((id) => ECHO_ROUTE_LABELS[id]),
    'splitbrain ÷ the others (median)'], rows);
}

export const DEVICE_TABLE_LEGEND = 'Round trip in µs: one byte written and the same byte read back, '
  + 'timed inside the client process around the write and the read alone (Python\'s '
  + '`time.perf_counter_ns`; the client loop is the same on every route), lower is better. '
  + 'Behind every terminal route a board process echoes on the pty\'s other end; "socat echo" is '
  + 'TCP alone, with a pipe and no terminal behind socat. The raw nats.js relay is the least any '
  + 'relay through NATS can do, with the processes splitbrain\'s route has (bench/nats-echo-relay.ts: '
  + 'a Node process on each side of the run\'s nats-server, one plain publish per byte each way, '
  + 'reached over TCP by the client): the floor of the bus. splitbrain\'s route opens the device '
  + 'mount\'s link to the board\'s terminal, which leads to a pseudo-terminal of the master\'s relayed '
  + 'to the slave\'s device (docs/architecture.md, "Terminals"), over a device link from the mount to '
  + 'the agent (docs/architecture.md, "Device links"). The last column is splitbrain\'s '
  + 'median as a multiple of the other routes\'; the target (issue 22) is at most 3× socat → pty. The '
  + 'first row is timed after every route\'s untimed warm-up (`BENCH_ECHO_WARMUP`): Node\'s processes '
  + 'run their per-byte code unoptimised at first, and a mount or sidecar lives for many sessions; the '
  + 'second row is the first rounds of that warm-up, while the routes\' processes are new.';

/** Start errors, listed under the section's table. */
function deviceProblems(results: DeviceBenchResults): string[] {
  return [...results.startErrors].map(([id, error]) => `- device ${id}: could not start: ${error}`);
}

/**
 * The device part as one section, so `--only devices` can rewrite it alone: the table, how to
 * read it and the routes that could not start.
 */
export function renderDeviceSection(results: DeviceBenchResults | undefined, error: string | undefined, heading: string): string {
  const out = ['### Device echo', '', heading, ''];
  if (!results) return [...out, `Device bench: fails (${error ?? 'unknown'})`].join('\n');
  out.push(deviceTable(results), '', DEVICE_TABLE_LEGEND);
  const problems = deviceProblems(results);
  if (problems.length > 0) out.push('', ...problems);
  return out.join('\n');
}
