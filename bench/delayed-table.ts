/**
 * The delayed-link section: per delay, every workload and single call on splitbrain and on
 * sshfs, how many times faster splitbrain is, and what each workload cost on the bus.
 */
import { CALL_IDS, type CallId } from './call-bench.js';
import type { DelayedLinkResults, DelayedRun } from './delayed-link-bench.js';
import { markdownTable } from './markdown-table.js';
import { speedup, summary } from './report-table.js';
import { median } from './stats.js';

const CALL_LABELS: Record<CallId, string> = {
  'stat-known': '`stat` of a known file', 'stat-missing': '`stat` of a missing name', create: 'create + close',
  'write-4k': 'write 4 KiB + close', chmod: '`chmod`', unlink: '`unlink`', mkdir: '`mkdir`', rmdir: '`rmdir`',
};

function ms(us: number): string {
  return us < 1000 ? `${us.toFixed(0)} µs` : `${(us / 1000).toFixed(us < 10_000 ? 2 : 1)} ms`;
}

function ratioText(ratio: number | undefined): string {
  if (ratio === undefined) return '—';
  return `${ratio.toFixed(ratio < 10 ? 2 : ratio < 100 ? 1 : 0)}×`;
}

function runTable(run: DelayedRun, tarEntries: number): string {
  const rows: string[][] = [];
  for (const w of run.fs?.workloads ?? []) {
    const byTarget = run.fs?.outcomes.get(w.id);
    const cell = (t: 'splitbrain' | 'sshfs') => (run.startErrors.has(t) ? { value: undefined, text: 'not started' }
      : (({ value, text }) => ({ value, text: text(w.unit) }))(summary(byTarget?.get(t))));
    const ours = cell('splitbrain');
    const theirs = cell('sshfs');
    const messages = run.fs?.messages.get(w.id) ?? [];
    const perPass = messages.length > 0 ? median(messages) : undefined;
    const msgText = perPass === undefined ? '—'
      : `${perPass.toFixed(0)}${w.id === 'untar' || w.id === 'rm' || w.id === 'find' ? ` (${(perPass / tarEntries).toFixed(2)} per entry)` : ''}`;
    rows.push([`${w.label} (${w.unit === 's' ? 'time' : 'MB/s'})`, ours.text, theirs.text, ratioText(speedup(w.unit, ours.value, theirs.value)), msgText]);
  }
  for (const id of CALL_IDS) {
    const timing = (t: 'splitbrain' | 'sshfs') => {
      const timings = run.calls?.calls.get(t);
      return timings?.ok ? timings.byKey.get(id)?.medianUs : undefined;
    };
    const ours = timing('splitbrain');
    const theirs = timing('sshfs');
    rows.push([`${CALL_LABELS[id]} (median)`, ours === undefined ? '—' : ms(ours), theirs === undefined ? '—' : ms(theirs),
      ratioText(speedup('s', ours, theirs)), '—']);
  }
  return markdownTable(['Workload or call', 'splitbrain', 'sshfs', 'splitbrain vs sshfs (× faster)', 'bus messages (median per pass)'], rows);
}

export function renderDelayedSection(r: DelayedLinkResults | undefined, error: string | undefined, heading: string): string {
  const delays = r?.runs.map((run) => `D = ${run.delayMs} ms`).join(', ') ?? 'a delay each way';
  const out = [`### Over a delayed link (${delays}): 1 ms is a lab across a campus, 5 ms another site`, '', heading, ''];
  if (!r) return [...out, `The delayed-link part failed: ${error ?? 'unknown'}`].join('\n');
  for (const run of r.runs) {
    out.push(`#### D = ${run.delayMs} ms each way (every round trip + ${2 * run.delayMs} ms)`, '');
    if (run.error !== undefined) out.push(`Failed: ${run.error}`, '');
    out.push(runTable(run, r.tarEntries), '');
  }
  out.push('A delay proxy (`bench/delay-proxy.c`, its own process: every byte handed on D ms after it came, '
    + 'each way, in order, without holding up what follows, its writer sleeping to the due time to the '
    + 'microsecond rather than to the next millisecond as a Node timer would) sits between the agent and '
    + 'its nats-server, and another between sshfs and its sshd; the mount and sshfs are on the near side. Each delay has its own '
    + 'nats-server, agent, mount and sshfs. The workloads are the loopback table\'s, with the same passes; the '
    + 'calls are the single-call table\'s, by call-timing.py. The agent\'s links (the mount\'s session link: '
    + 'docs/architecture.md, "Session links") cross a delay proxy of their own, the agent offering its port '
    + '(`--link-offer`). Bus messages are what that nats-server received during the workload (`/varz` in_msgs: '
    + 'requests, replies, the change feed\'s events and its heartbeat, one a second) and the frames the agent\'s '
    + 'links carried (agent.stats: requests in, replies out), which is where the mount\'s requests go once its '
    + 'session link is up.');
  return out.join('\n');
}
