/**
 * How `splitbrain status` and `splitbrain top` print: aligned columns for people, as `docker ps`
 * and `iostat` do (their --json is for programs).
 */
import type { HelloInfo } from '../protocol/index.js';
import type { ActivitySample, AgentStatus } from '../transport/agent-status.js';

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  return rows.map((row) => row.map((cell, column) =>
    (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ')).join('\n') + '\n';
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const [d, h, m] = [Math.floor(s / 86_400), Math.floor((s % 86_400) / 3600), Math.floor((s % 3600) / 60)];
  if (d > 0) return `${d}d${String(h).padStart(2, '0')}h`;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

function formatRate(bytesPerSecond: number): string {
  const units = ['B/s', 'kB/s', 'MB/s', 'GB/s'];
  let value = bytesPerSecond;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/**
 * The agent's own guards in one cell: rw/ro, whose rights requests get (as=caller: a root agent
 * acts as each master process; as=agent: as itself), which commands, which devices, and
 * whether masters may make device nodes; then how the change feed learns of changes
 * (changes=inotify, fanotify, degraded or off; absent from agents older than the feed).
 */
function policyCell(hello: HelloInfo): string {
  const exec = hello.policy.exec;
  const commands = exec === 'all' || exec === 'none' ? exec : exec.join(',');
  const identity = hello.identity ?? 'agent';
  const nodes = hello.policy.deviceNodes ? ' mknod=yes' : '';
  const changes = hello.changes === undefined ? '' : ` changes=${hello.changes}`;
  return `${hello.readOnly ? 'ro' : 'rw'} as=${identity} exec=${commands} dev=${hello.policy.devAllow.join(',')}${nodes}${changes}`;
}

/**
 * The NATS server an agent is connected to: its name (a cluster's servers and leaf nodes are
 * named in their configuration), else the address; '?' from agents older than the field.
 */
function serverCell(hello: HelloInfo): string {
  if (hello.server === undefined) return '?';
  return hello.server.name || hello.server.url || '?';
}

/** One line per agent; uptime by the master's clock against the agent's start time. */
export function formatStatus(agents: AgentStatus[], now: number): string {
  const rows = [['AGENT', 'HOSTNAME', 'BOOT ID', 'UPTIME', 'VERSION', 'BACKEND', 'PID', 'SERVER', 'ROOT', 'POLICY']];
  for (const { agentId, hello, error } of agents) {
    if (!hello) {
      rows.push([agentId, '-', '-', '-', '-', '-', '-', '-', '-', `no answer: ${error ?? 'unknown'}`]);
      continue;
    }
    rows.push([
      agentId, hello.hostname, hello.bootId.slice(0, 8), formatDuration(now - hello.startedAt),
      `${hello.version ?? '?'}/p${hello.protocol}`, hello.backend ?? '?', String(hello.pid), serverCell(hello), hello.root, policyCell(hello),
    ]);
  }
  return table(rows);
}

/** Process output the agent keeps for its masters, against its budget; and cuts, if any. */
function outputCell(output: ActivitySample['output']): string {
  if (output === undefined) return '';
  const mib = (n: number) => `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  return `  output kept ${mib(output.kept)} of ${mib(output.budget)}${output.cuts > 0 ? ` (${output.cuts} cut off)` : ''}`;
}

/** One interval of one agent: a summary line, then its ops, busiest first. */
export function formatActivity(agentId: string, sample: ActivitySample, at: Date): string {
  const head = `${at.toISOString().slice(11, 19)}  ${agentId}${sample.restarted ? '  (agent restarted)' : ''}  `
    + `${sample.opsPerSecond.toFixed(1)} ops/s  ${sample.errorsPerSecond.toFixed(1)} err/s  `
    + `read ${formatRate(sample.readBytesPerSecond)}  written ${formatRate(sample.writtenBytesPerSecond)}  `
    + `in flight ${sample.inFlight}  open: ${sample.handles.files} files ${sample.handles.devices} devices `
    + `${sample.handles.processes} processes${outputCell(sample.output)}\n`;
  if (sample.ops.length === 0) return `${head}(idle)\n\n`;
  const rows = [['OP', 'OPS/S', 'ERR/S', 'MEAN MS']];
  for (const op of sample.ops) {
    rows.push([op.op, op.perSecond.toFixed(1), op.errorsPerSecond.toFixed(1), op.meanMs.toFixed(3)]);
  }
  return `${head}${table(rows)}\n`;
}
