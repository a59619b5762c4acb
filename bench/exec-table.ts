/**
 * The process bench's part of the report: one table with a column per route and the two
 * targets, the sentences that say how to read it, and its failures for the problems list.
 */
import type { ExecBenchResults, LatencyResult } from './exec-bench.js';
import { ROUTE_IDS, ROUTE_LABELS, type RouteId } from './exec-routes.js';
import type { Outcome } from './fs-bench.js';
import { markdownTable } from './markdown-table.js';
import { median, percentile } from './stats.js';

const MARK_NOTE = '†';
/** The bars: a bridged `true` at most 1/5 of ssh with ControlMaster, stdout at least ssh's. */
const LATENCY_TARGET = 1 / 5;
const STREAM_TARGET = 1;

function ms(v: number): string {
  return v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0);
}

function mbps(v: number): string {
  return `${v.toFixed(v >= 100 ? 0 : 1)} MB/s`;
}

function latencyCell(r: LatencyResult | undefined, latencyRuns: number): { value?: number; text: string } {
  if (!r) return { text: 'not run' };
  const failed = r.failures.length > 0 ? `; ${r.failures.length}/${r.planned} failed: ${r.failures[0]}` : '';
  const retired = r.retired !== undefined ? `; stopped: ${r.retired}` : '';
  if (r.samplesMs.length === 0) return { text: `fails (${r.retired ?? r.failures[0] ?? 'no runs'})` };
  const m = median(r.samplesMs);
  const runs = r.planned !== latencyRuns ? `, ${r.planned} runs` : '';
  return { value: m, text: `${ms(m)} ms (p90 ${ms(percentile(r.samplesMs, 90))}${runs}${failed}${retired})` };
}

function streamCell(list: Outcome[] | undefined, noted: boolean): { value?: number; text: string } {
  const outcomes = list ?? [];
  const values = outcomes.flatMap((o) => (o.ok ? [o.value] : []));
  const failures = outcomes.flatMap((o) => (o.ok ? [] : [o]));
  const mark = noted ? ` ${MARK_NOTE}` : '';
  if (values.length === 0) return { text: failures[0] ? `fails (${failures[0].reason})${mark}` : 'not run' };
  const failed = failures.length > 0 ? ` (${failures.length}/${outcomes.length} failed: ${failures[0]?.reason})` : '';
  return { value: median(values), text: `${mbps(median(values))}${failed}${mark}` };
}

/** `ratio` against the bar, ✓ or ✗; '—' when either side has no figure. */
function targetText(what: string, ratio: number | undefined, bar: string, met: boolean, failedCheck: boolean): string {
  if (ratio === undefined) return `${what}: —`;
  const verdict = failedCheck ? `✗ (${MARK_NOTE} failed check)` : met ? '✓' : '✗';
  return `${what} ${ratio.toFixed(2)} (${bar}) ${verdict}`;
}

function ratioOf(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b <= 0 ? undefined : a / b;
}

export function execTable(results: ExecBenchResults): string {
  const notStarted = (id: RouteId) => results.startErrors.has(id);
  const latency = new Map(ROUTE_IDS.map((id) => [id,
    notStarted(id) ? { text: 'not started' } : latencyCell(results.latency.get(id), results.latencyRuns)]));
  const noted = (id: RouteId) => results.notes.some((n) => n.route === id);
  const stream = new Map(ROUTE_IDS.map((id) => [id,
    notStarted(id) ? { text: 'not started' } : streamCell(results.stream.get(id), noted(id))]));

  const latencyRatio = ratioOf(latency.get('shim')?.value, latency.get('ssh-cm')?.value);
  const streamRatio = ratioOf(stream.get('shim')?.value, stream.get('ssh-cm')?.value);
  const mib = results.sizeBytes / 1024 / 1024;
  const rows = [
    [`\`true\`: median (p90) of ${results.latencyRuns} sequential runs`,
      ...ROUTE_IDS.map((id) => latency.get(id)?.text ?? ''),
      targetText('shim ÷ ssh ControlMaster', latencyRatio, `≤ ${LATENCY_TARGET.toFixed(2)}`,
        latencyRatio !== undefined && latencyRatio <= LATENCY_TARGET, false)],
    [`stdout of \`head -c ${mib} MiB /dev/zero\` into \`wc -c\`, median of ${results.runs}`,
      ...ROUTE_IDS.map((id) => stream.get(id)?.text ?? ''),
      targetText('shim ÷ ssh ControlMaster', streamRatio, `≥ ${STREAM_TARGET}`,
        streamRatio !== undefined && streamRatio >= STREAM_TARGET, noted('shim'))],
  ];
  return markdownTable(['Process workload', ...ROUTE_IDS.map((id) => ROUTE_LABELS[id]), 'Target (from the issue)'], rows);
}

export const EXEC_TABLE_LEGEND = 'Latency in ms, wall clock from spawn to exit of each run as the bench sees it '
  + '(a Node process that spawns every run the same way, so its own spawn cost is in every column), lower is better; '
  + 'stdout in MB/s (10^6 bytes per second) from spawn to exit of the pipeline, higher is better. '
  + '"ssh, new connection" pays a key exchange and login on every run, its stdout figure included; '
  + '"ssh, ControlMaster" multiplexes every run over one connection made beforehand, untimed. '
  + 'The target column holds the issue\'s bars: a bridged `true` at most 1/5 of ssh with ControlMaster, '
  + 'and the shim\'s stdout at least as fast as ssh\'s (with ControlMaster, so connection setup is in neither).';

/** Start errors and failed byte counts, for the report's problems list. */
export function execProblems(results: ExecBenchResults): string[] {
  return [
    ...[...results.startErrors].map(([id, error]) => `- exec ${id}: could not start: ${error}`),
    ...results.notes.map((n) => `- ${MARK_NOTE} exec ${n.route}: ${n.message}`),
  ];
}
