/**
 * The results as Markdown: what was measured on what, the workload table, the floors (raw
 * transport and FUSE), the process table, the device table, the caller table, the single-call section,
 * and every failure or check that went wrong.
 * Printed as is, and written into the doc.
 */
import { CALLER_TABLE_LEGEND, callerTable, type CallerBenchResults } from './caller-bench.js';
import type { ExecBenchResults } from './exec-bench.js';
import { EXEC_TABLE_LEGEND, execProblems, execTable } from './exec-table.js';
import type { FsBenchResults, Outcome } from './fs-bench.js';
import type { Workload } from './fs-workloads.js';
import type { FuseFloorResult } from './fuse-floor.js';
import { markdownTable } from './markdown-table.js';
import { median } from './stats.js';
import { TARGET_NAMES, type TargetName } from './target.js';
import { RTT_REQUESTS, type FloorResult } from './transport-floor.js';

export interface BenchReport {
  date: string;
  machine: string;
  tools: string;
  sizeMb: number;
  runs: number;
  splitbrainOptions: string;
  durationS: number;
  /** How long each target waited before a cold workload, e.g. "splitbrain 1.5 s, sshfs 21 s". */
  coldWaits: string;
  /** 1-minute load average at the start and at the end of the run. */
  load: [string, string];
  /** Targets that could not be started, with why. */
  startErrors: Map<TargetName, string>;
  fs: FsBenchResults | undefined;
  floor: FloorResult | undefined;
  floorError: string | undefined;
  fuseFloor: FuseFloorResult | undefined;
  fuseFloorError: string | undefined;
  exec: ExecBenchResults | undefined;
  execError: string | undefined;
  /** The device part's section, rendered and marked by the caller (renderDeviceSection). */
  deviceSection: string | undefined;
  callers: CallerBenchResults | undefined;
  callersError: string | undefined;
  /** The single-call, depth and coherence section, rendered (call-table.ts) and marked (performance-doc.ts). */
  callSection: string | undefined;
  /** The stream part (stream-table.ts), already marked. */
  streamSection?: string;
  /** The delayed-link part (delayed-table.ts), already marked. */
  delayedSection?: string;
  /** The cluster part (cluster-bench.ts), already marked. */
  clusterSection?: string;
  /** The agent memory part (memory-bench.ts), already marked. */
  memorySection?: string;
  /** Warnings and errors the splitbrain agent and mount logged during the run. */
  logExcerpts: string[];
}

const MARK_NOTE = '†';
/** The issue's bar: at least as fast as sshfs, and sequential I/O at 80 % of the raw floor. */
const FLOOR_TARGET = 0.8;

function formatValue(unit: Workload['unit'], v: number): string {
  if (unit === 'MB/s') return `${v.toFixed(v >= 100 ? 0 : 1)} MB/s`;
  return `${v.toFixed(v < 10 ? 2 : 1)} s`;
}

export function summary(outcomes: Outcome[] | undefined): { value?: number; text: (unit: Workload['unit']) => string } {
  const list = outcomes ?? [];
  const values = list.flatMap((o) => (o.ok ? [o.value] : []));
  const failures = list.flatMap((o) => (o.ok ? [] : [o]));
  if (values.length === 0) {
    const first = failures.find((f) => !f.skipped) ?? failures[0];
    if (!first) return { text: () => 'not run' };
    return { text: () => (first.skipped ? `skipped (${first.reason})` : `fails (${first.reason})`) };
  }
  const m = median(values);
  const failed = failures.length > 0 ? ` (${failures.length}/${list.length} failed: ${failures[0]?.reason})` : '';
  return { value: m, text: (unit) => `${formatValue(unit, m)}${failed}` };
}

/** > 1: splitbrain is faster. Throughput divides one way, times the other. */
export function speedup(unit: Workload['unit'], splitbrain?: number, sshfs?: number): number | undefined {
  if (splitbrain === undefined || sshfs === undefined || splitbrain <= 0 || sshfs <= 0) return undefined;
  return unit === 'MB/s' ? splitbrain / sshfs : sshfs / splitbrain;
}

function workloadTable(report: BenchReport, fs: FsBenchResults): string {
  const rows = fs.workloads.map((w) => {
    const byTarget = fs.outcomes.get(w.id);
    const cells = new Map(TARGET_NAMES.map((t) => {
      const startError = report.startErrors.get(t);
      if (startError !== undefined) return [t, { value: undefined, text: 'not started' }] as const;
      const s = summary(byTarget?.get(t));
      const noted = fs.notes.some((n) => n.target === t && n.workload === w.id);
      return [t, { value: s.value, text: `${s.text(w.unit)}${noted ? ` ${MARK_NOTE}` : ''}` }] as const;
    }));
    const ratio = speedup(w.unit, cells.get('splitbrain')?.value, cells.get('sshfs')?.value);
    let ratioText = '—';
    if (ratio !== undefined) ratioText = `${ratio.toFixed(2)}× ${ratio >= 1 ? '✓' : '✗'}`;
    else if (cells.get('splitbrain')?.value !== undefined) ratioText = 'sshfs fails: splitbrain only';
    const label = `${w.label} (${w.unit === 's' ? 'time' : 'MB/s'})`;
    return [label, ...TARGET_NAMES.map((t) => cells.get(t)?.text ?? ''), ratioText];
  });
  return markdownTable(['Workload', ...TARGET_NAMES, 'splitbrain vs sshfs (× faster)'], rows);
}

/** `ours` as a share of `floor`; ✓/✗ against the issue's bar where one applies. */
function shareText(ours: number | undefined, floor: number | undefined, bar: boolean): string {
  if (ours === undefined || floor === undefined || floor <= 0) return '—';
  const share = ours / floor;
  return `${(share * 100).toFixed(0)} %${bar ? ` ${share >= FLOOR_TARGET ? '✓' : '✗'}` : ''}`;
}

function floorTable(report: BenchReport): string {
  const { floor, fuseFloor } = report;
  const splitbrain = (id: 'seq-read' | 'seq-write') => summary(report.fs?.outcomes.get(id)?.get('splitbrain')).value;
  const mbps = (v: number | undefined) => (v === undefined ? '—' : formatValue('MB/s', v));
  const row = (label: string, id: 'seq-read' | 'seq-write', nats?: number[], fuse?: number[]) => {
    const ours = splitbrain(id);
    const n = nats && median(nats);
    const f = fuse && median(fuse);
    return [label, mbps(n), mbps(f), mbps(ours), shareText(ours, n, true), shareText(ours, f, false)];
  };
  let natsHeader = 'raw nats.js';
  if (floor) {
    const msg = floor.messageBytes === 1024 * 1024 ? '1 MiB' : `${floor.messageBytes} B`;
    natsHeader = `raw nats.js (${msg} messages, ${floor.inFlight} in flight)`;
  }
  const rows = [
    row(`Sequential write, ${report.sizeMb} MiB + fsync`, 'seq-write', floor?.writeMBps, fuseFloor?.writeMBps),
    row(`Cold sequential read, ${report.sizeMb} MiB`, 'seq-read', floor?.readMBps, fuseFloor?.readMBps),
  ];
  if (fuseFloor) {
    const secs = (v: number | undefined) => (v === undefined ? '—' : formatValue('s', v));
    const timeRow = (label: string, id: 'find' | 'rm', fuse: number[]) => {
      const ours = summary(report.fs?.outcomes.get(id)?.get('splitbrain')).value;
      const f = median(fuse);
      // For times the share is floor ÷ ours: 100 % would be the floor itself.
      return [label, '—', secs(f), secs(ours), '—', ours ? `${((f / ours) * 100).toFixed(0)} %` : '—'];
    };
    rows.push(timeRow(`Cold \`find -ls\`, ${fuseFloor.entries} entries (null fs: one flat directory)`, 'find', fuseFloor.findS));
    rows.push(timeRow(`\`rm -rf\`, ${fuseFloor.entries} entries (null fs: one flat directory)`, 'rm', fuseFloor.rmS));
  }
  if (floor) {
    rows.push([`Round trip of a 16-byte request (${report.runs} × ${RTT_REQUESTS} sequential)`,
      `${floor.rttMedianUs.toFixed(0)} µs median, ${floor.rttP99Us.toFixed(0)} µs p99`, '—', '—', '—', '—']);
  }
  return markdownTable(['Floor', natsHeader, 'FUSE binding, null fs', 'splitbrain mount',
    'splitbrain as % of raw nats.js', 'splitbrain as % of FUSE floor'], rows);
}

export function renderReport(report: BenchReport): string {
  const out: string[] = [
    `Measured ${report.date} on ${report.machine}; ${report.tools}.`,
    `${report.sizeMb} MiB for the sequential tests, median of ${report.runs} run(s), `
      + `splitbrain mount options: ${report.splitbrainOptions || 'defaults'}; `
      + `waits before cold runs: ${report.coldWaits}. The whole run took ${Math.round(report.durationS)} s; `
      + `load average ${report.load[0]} at the start, ${report.load[1]} at the end.`,
    '',
  ];
  if (report.fs) {
    out.push(workloadTable(report, report.fs), '');
    out.push('Throughput in MB/s (10^6 bytes per second), higher is better; times in seconds, lower is better. '
      + '"× faster" is sshfs time ÷ splitbrain time (or splitbrain MB/s ÷ sshfs MB/s): '
      + 'above 1 splitbrain is faster; '
      + '✓ marks the issue\'s "at least as fast as sshfs".', '');
  }
  if (report.floor || report.fuseFloor) {
    out.push(floorTable(report), '', 'Each floor is the most splitbrain could reach if only that layer cost '
      + 'anything: raw nats.js moves the bytes between two processes with no filesystem, the FUSE floor runs '
      + 'the same `dd` on a null filesystem behind splitbrain\'s own FUSE binding and adapter with no network, '
      + 'and `find -ls` and `rm -rf` of as many files as the tree has entries (splitbrain\'s figures are the '
      + 'tree workloads above; for times the share is floor time ÷ splitbrain time). '
      + '✓ marks the issue\'s "at least 80 % of the raw floor".', '');
  }
  if (report.floorError) out.push(`Transport floor: fails (${report.floorError})`, '');
  if (report.fuseFloorError) out.push(`FUSE floor: fails (${report.fuseFloorError})`, '');
  if (report.exec) out.push(execTable(report.exec), '', EXEC_TABLE_LEGEND, '');
  if (report.execError) out.push(`Process bench: fails (${report.execError})`, '');
  if (report.deviceSection) out.push(report.deviceSection, '');
  if (report.streamSection) out.push(report.streamSection, '');
  if (report.callers) out.push(callerTable(report.callers), '', CALLER_TABLE_LEGEND, '');
  if (report.callersError) out.push(`Caller bench: fails (${report.callersError})`, '');
  if (report.callSection) out.push(report.callSection, '');
  if (report.delayedSection) out.push(report.delayedSection, '');
  if (report.clusterSection) out.push(report.clusterSection, '');
  if (report.memorySection) out.push(report.memorySection, '');
  const problems: string[] = [];
  for (const [target, error] of report.startErrors) problems.push(`- ${target}: could not start: ${error}`);
  for (const n of report.fs?.notes ?? []) problems.push(`- ${MARK_NOTE} ${n.target}, ${n.workload}: ${n.message}`);
  if (report.exec) problems.push(...execProblems(report.exec));
  for (const line of report.logExcerpts) problems.push(`- log: ${line}`);
  if (problems.length > 0) out.push('Failed checks, start errors and logged warnings:', '', ...problems, '');
  return out.join('\n');
}
