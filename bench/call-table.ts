/**
 * The call section of the report: the per-call table, the depth table and the coherence row,
 * with a line of its own saying when, where and by which command they were measured, because
 * `npm run bench -- --only calls` rewrites this section alone.
 */
import {
  CALL_DEPTHS, CALL_TARGETS, CPU_CALLS, CPU_LOOP_CALLS, type CallBenchResults, type CallCpu, type CallId, type CpuCallId,
  type CpuOutcome, type DepthPart, type Timings,
} from './call-bench.js';
import { COHERENCE_DEADLINE_S, type CoherenceResults } from './coherence-bench.js';
import { markdownTable } from './markdown-table.js';
import { percentile } from './stats.js';
import type { TargetName } from './target.js';

export interface CallSection {
  date: string;
  machine: string;
  /** The command that measured it: the full bench, or `--only calls`. */
  command: string;
  durationS: number;
  load: [string, string];
  /** Targets that could not be started, with why. */
  startErrors: Map<TargetName, string>;
  calls: CallBenchResults | undefined;
  callsError: string | undefined;
  coherence: CoherenceResults | undefined;
  coherenceError: string | undefined;
}

const HEADERS: Record<TargetName, string> = { local: 'local disk', bindfs: 'bindfs', sshfs: 'sshfs (defaults)', splitbrain: 'splitbrain' };
const NOTE = '†';

const CALL_ROWS: [string, CallId[]][] = [
  ['`stat` of a known file', ['stat-known']],
  ['`stat` of a missing name', ['stat-missing']],
  ['create + close (`O_CREAT|O_EXCL`, fresh names)', ['create']],
  ['write 4 KiB + close (`O_TRUNC`)', ['write-4k']],
  ['`chmod`', ['chmod']],
  ['`unlink`', ['unlink']],
  ['`mkdir` / `rmdir`', ['mkdir', 'rmdir']],
];

function us(v: number): string {
  return `${v.toFixed(v < 10 ? 1 : 0)} µs`;
}

function duration(microseconds: number): string {
  if (microseconds < 1000) return us(microseconds);
  if (microseconds < 1e6) return `${(microseconds / 1000).toFixed(microseconds < 1e4 ? 2 : 1)} ms`;
  return `${(microseconds / 1e6).toFixed(2)} s`;
}

function median(timings: Timings | undefined, key: string): number | undefined {
  return timings?.ok ? timings.byKey.get(key)?.medianUs : undefined;
}

/** The cell of one target: the medians of `keys` joined by " / ", or why there are none. */
function cell(section: CallSection, timings: Timings | undefined, target: TargetName, keys: string[], iterations: number): string {
  if (section.startErrors.has(target)) return 'not started';
  if (timings === undefined) return '—';
  if (!timings.ok) return `fails (${timings.reason})`;
  return keys.map((key) => {
    const stat = timings.byKey.get(key);
    if (stat === undefined) return '—';
    return `${us(stat.medianUs)}${stat.count < iterations ? ` (n=${stat.count})` : ''}`;
  }).join(' / ');
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b <= 0 ? '—' : `${(a / b).toFixed(2)}×`;
}

function callTable(section: CallSection, calls: CallBenchResults): string {
  const rows = CALL_ROWS.map(([label, keys]) => {
    const ratios = keys.map((key) => ratio(median(calls.calls.get('splitbrain'), key), median(calls.calls.get('sshfs'), key)));
    return [label, ...CALL_TARGETS.map((t) => cell(section, calls.calls.get(t), t, keys, calls.iterations)), ratios.join(' / ')];
  });
  return markdownTable(['Call, depth 1 (median µs per call)', ...CALL_TARGETS.map((t) => HEADERS[t]), 'splitbrain ÷ sshfs'], rows);
}

function depthTable(section: CallSection, calls: CallBenchResults): string {
  const key = (depth: number, part: DepthPart) => `d${depth}.${part}`;
  const rows = CALL_DEPTHS.map((depth) => [String(depth), ...CALL_TARGETS.map((t) => {
    const round = cell(section, calls.depths.get(t), t, [key(depth, 'round')], calls.iterations);
    const parts = (['stat', 'create', 'unlink'] as const).map((p) => median(calls.depths.get(t), key(depth, p)));
    if (parts.some((p) => p === undefined)) return round;
    return `${round} (${parts.map((p) => (p as number).toFixed(p as number < 10 ? 1 : 0)).join(' / ')})`;
  })]);
  const last = CALL_DEPTHS[CALL_DEPTHS.length - 1] as number;
  rows.push([`${last} ÷ 1`, ...CALL_TARGETS.map((t) =>
    ratio(median(calls.depths.get(t), key(last, 'round')), median(calls.depths.get(t), key(1, 'round'))))]);
  return markdownTable(['Depth: stat + create + unlink (median µs per round: stat / create / unlink)',
    ...CALL_TARGETS.map((t) => HEADERS[t])], rows);
}

const CPU_CALL_LABELS: Record<CpuCallId, string> = { 'write-4k': 'write 4 KiB + close', create: 'create + close' };

/** The rows of one call: wall time, then the CPU of each side, then all of them. */
const CPU_ROWS: [string, (c: CallCpu) => string][] = [
  ['wall time', (c) => us(c.wallUs)],
  ['CPU: the program', (c) => us(c.programUs)],
  ['CPU: the FUSE side', (c) => (c.near ? `${us(c.near.us)} (${c.near.label})` : '—')],
  ['CPU: what it talks to', (c) => (c.far ? `${us(c.far.us)} (${c.far.label})` : '—')],
  ['CPU: all of them', (c) => us(c.programUs + (c.near?.us ?? 0) + (c.far?.us ?? 0))],
];

function cpuTable(section: CallSection, cpu: Map<TargetName, Map<CpuCallId, CpuOutcome>>): string {
  const rows = CPU_CALLS.flatMap((call) => CPU_ROWS.map(([what, show]) => [`${CPU_CALL_LABELS[call]}: ${what}`, ...CALL_TARGETS.map((t) => {
    if (section.startErrors.has(t)) return 'not started';
    const outcome = cpu.get(t)?.get(call);
    if (outcome === undefined) return '—';
    if (!outcome.ok) return `fails (${outcome.reason})`;
    return `${show(outcome.value)}${outcome.value.count < CPU_LOOP_CALLS ? ` (n=${outcome.value.count})` : ''}`;
  })]));
  return markdownTable(['Per call (mean µs)', ...CALL_TARGETS.map((t) => HEADERS[t])], rows);
}

function coherenceTable(section: CallSection, coherence: CoherenceResults): { table: string; notes: string[] } {
  const notes: string[] = [];
  const cells = CALL_TARGETS.map((t) => {
    if (section.startErrors.has(t)) return 'not started';
    const outcome = coherence.byTarget.get(t);
    if (outcome === undefined) return '—';
    if (!outcome.ok) return `fails (${outcome.reason})`;
    const { waitsUs, timeouts, stopped } = outcome;
    const n = waitsUs.length + timeouts;
    const extra = [`n=${n}`, ...(timeouts > 0 ? [`${timeouts} not seen in ${COHERENCE_DEADLINE_S} s`] : [])];
    if (stopped !== undefined) {
      notes.push(`- ${NOTE} ${t}: stopped after ${n} of ${coherence.changes} changes: ${stopped}`);
      extra.push(NOTE);
    }
    if (waitsUs.length === 0) return `none seen (${extra.join(', ')})`;
    return `p50 ${duration(percentile(waitsUs, 50))}, p99 ${duration(percentile(waitsUs, 99))} (${extra.join(', ')})`;
  });
  const table = markdownTable(['Coherence', ...CALL_TARGETS.map((t) => HEADERS[t])],
    [['file rewritten on the slave side → new size seen by `stat` through the mount', ...cells]]);
  return { table, notes };
}

const CALL_LEGEND = 'Each call timed on its own (Python\'s `time.perf_counter_ns` around the one `os` call) in '
  + 'one Python process per target (`bench/call-timing.py`), at depth 1 in a fresh directory under the '
  + 'mount; median of ITERATIONS timed calls after WARMUP untimed rounds of every call (a mount compiles its '
  + 'hot paths as it serves them: bench/call-bench.ts); "n=" marks a loop cut '
  + 'short by its 10 s bound. create makes a new name each time; write opens one of those files '
  + '`O_WRONLY|O_TRUNC`, writes 4 KiB and closes it; chmod and unlink act on those files, rmdir on the '
  + 'directories mkdir made. Lower is better; the last column is splitbrain\'s median over sshfs\'s.';

const DEPTH_LEGEND = 'At the end of a chain of that many directories (made untimed): `stat` of a known file, '
  + 'create + close of a fresh name, `unlink` of it; the median of the rounds (all three calls) in µs, '
  + 'the medians of each call in brackets; the last row is the depth-200 round over the depth-1 round.';

const CPU_LEGEND = 'What one call costs each process: the call in a loop of CALLS (`call-timing.py cpu`, after WARMUP '
  + 'untimed; the same files and calls as above), the mean wall time per call, and the CPU time (user and '
  + 'system, every thread) per call of the program making it, of the FUSE server side (the splitbrain '
  + 'mount; sshfs with its ssh client; bindfs) and of what that talks to (the agent with its change watcher; '
  + 'sshd\'s session with sftp-server), read from `/proc/PID/stat` just before and after the loop. A call '
  + 'that waits for the far side spends most of this one process after another (each hands the call on to '
  + 'the next and waits), with the hand-overs on top: the CPU per call is what stands between such a call '
  + 'and sshfs\'s time.';

const COHERENCE_LEGEND = 'A file in the exported directory is rewritten in place (truncate and write, one byte '
  + 'longer each time) by a process on the slave side, not through the mount, right after a `stat` through '
  + 'the mount (so the mount holds the old state); the time until `stat` through the mount, polled every '
  + 'millisecond, shows the new size (`bench/coherence-probe.py`). p50 and p99 over the changes measured '
  + '(n): CHANGES changes at most, a 300 s bound per target, and a target whose first five changes each '
  + 'take over 5 s stops there. The targets are probed at the same time. Lower is better; the local disk '
  + 'is the floor (the same directory on both sides).';

export function renderCallSection(section: CallSection): string {
  const out = [
    '### Single calls, depth and coherence',
    '',
    `Measured ${section.date} on ${section.machine} by \`${section.command}\`; this part took `
      + `${Math.round(section.durationS)} s, load average ${section.load[0]} at its start, ${section.load[1]} at its end.`,
    '',
  ];
  const { calls, coherence } = section;
  if (calls) {
    out.push(callTable(section, calls), '', CALL_LEGEND.replace('ITERATIONS', String(calls.iterations)).replace('WARMUP', String(calls.warmUp)), '');
    out.push(depthTable(section, calls), '', DEPTH_LEGEND, '');
    if (calls.cpu) out.push(cpuTable(section, calls.cpu), '', CPU_LEGEND.replace('CALLS', String(CPU_LOOP_CALLS)).replace('WARMUP', String(calls.warmUp)), '');
  }
  if (section.callsError) out.push(`Call bench: fails (${section.callsError})`, '');
  if (coherence) {
    const { table, notes } = coherenceTable(section, coherence);
    out.push(table, '', COHERENCE_LEGEND.replace('CHANGES', String(coherence.changes)), '');
    if (notes.length > 0) out.push(...notes, '');
  }
  if (section.coherenceError) out.push(`Coherence bench: fails (${section.coherenceError})`, '');
  for (const [target, error] of section.startErrors) out.push(`- ${target}: could not start: ${error}`);
  return out.join('\n').trimEnd();
}
