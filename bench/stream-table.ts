/**
 * The stream part's section of the report: each stream's throughput against the raw floor it
 * runs on, the messages per MiB through nats-server and the CPU every process spends per GiB,
 * with a line saying when and by which command, since `--only streams` rewrites it alone.
 */
import { markdownTable } from './markdown-table.js';
import { median } from './stats.js';
import { STREAM_IDS, type ProcessName, type StreamBenchResults, type StreamId, type StreamSample } from './stream-bench.js';

/** The issue's bar: each stream at least 80 % of the raw floor in the same run. */
export const STREAM_FLOOR_TARGET = 0.8;

interface Row {
  label: string;
  /** The floor this stream is held against (the same direction: slave to master, or back). */
  floor?: StreamId;
  master: ProcessName[];
  slave: ProcessName[];
  program: ProcessName[];
}

const ROWS: Record<StreamId, Row> = {
  'floor-read': { label: 'raw nats.js, slave → master (1 MiB replies, 4 in flight)', master: ['bench'], slave: ['floor responder'], program: [] },
  'floor-write': { label: 'raw nats.js, master → slave (1 MiB requests, 4 in flight)', master: ['bench'], slave: ['floor responder'], program: [] },
  'stdout': { label: 'bridged stdout: shim `head -c SIZE /dev/zero` piped to `wc -c`', floor: 'floor-read', master: ['bridge'], slave: ['exec agent'], program: ['shim'] },
  'mount-write': { label: 'mount: sequential write, `dd bs=1M conv=fsync`', floor: 'floor-write', master: ['mount'], slave: ['fs agent', 'change watcher'], program: ['dd'] },
  'mount-read': { label: 'mount: cold sequential read, `dd bs=1M`', floor: 'floor-read', master: ['mount'], slave: ['fs agent', 'change watcher'], program: ['dd'] },
};

const SHORT: Partial<Record<ProcessName, string>> = {
  'bench': 'requester', 'floor responder': 'responder', 'exec agent': 'agent', 'fs agent': 'agent', 'change watcher': 'watcher',
};

const GIB = 2 ** 30;
const MIB = 2 ** 20;

function mbps(s: StreamSample): number {
  return s.bytes / 1e6 / s.seconds;
}

function perGib(samples: StreamSample[], name: ProcessName): number | undefined {
  const values = samples.flatMap((s) => {
    const cpu = s.cpu.get(name);
    return cpu === undefined ? [] : [cpu / (s.bytes / GIB)];
  });
  return values.length === 0 ? undefined : median(values);
}

function cpuCell(samples: StreamSample[], names: ProcessName[], withNames: boolean): string {
  const parts = names.flatMap((n) => {
    const v = perGib(samples, n);
    return v === undefined ? [] : [`${withNames ? `${SHORT[n] ?? n} ` : ''}${v.toFixed(2)} s`];
  });
  return parts.length === 0 ? '—' : parts.join(' + ');
}

function totalPerGib(samples: StreamSample[], names: ProcessName[]): number {
  return names.reduce((sum, n) => sum + (perGib(samples, n) ?? 0), 0);
}

export function renderStreamSection(r: StreamBenchResults | undefined, error: string | undefined, heading: string): string {
  const out = ['### Streams: a bridged command\'s stdout and the mount\'s sequential I/O against the raw floor', '', heading, ''];
  if (!r) return [...out, `The stream part failed: ${error ?? 'unknown'}`].join('\n');
  /** The stream's MB/s as a share of its floor's in the same pass, for every pass both ran. */
  const shares = (id: StreamId, floor: StreamId) => {
    const floorByPass = new Map((r.samples.get(floor) ?? []).map((s) => [s.pass, mbps(s)]));
    return (r.samples.get(id) ?? []).flatMap((s) => {
      const f = floorByPass.get(s.pass);
      return f === undefined || f <= 0 ? [] : [mbps(s) / f];
    });
  };
  const rows = STREAM_IDS.map((id) => {
    const row = ROWS[id];
    const samples = r.samples.get(id) ?? [];
    const failed = r.failures.get(id) ?? [];
    const label = row.label.replace('SIZE', `${r.sizeBytes / MIB}M`);
    if (samples.length === 0) return [label, `fails (${failed[0] ?? 'not run'})`, '—', '—', '—', '—', '—', '—', '—'];
    const ours = median(samples.map(mbps));
    const passShares = row.floor === undefined ? [] : shares(id, row.floor);
    const share = row.floor === undefined ? 'the floor' : passShares.length === 0 ? '—'
      : `${(100 * median(passShares)).toFixed(0)} % ${median(passShares) >= STREAM_FLOOR_TARGET ? '✓' : '✗'} `
        + `(${passShares.map((x) => (100 * x).toFixed(0)).join(', ')})`;
    const all: ProcessName[] = [...row.master, ...row.slave, 'nats-server', ...row.program];
    const failedNote = failed.length > 0 ? ` (${failed.length} failed: ${failed[0]})` : '';
    return [
      label, `${ours.toFixed(0)} MB/s${failedNote}`, share,
      median(samples.map((s) => s.messages / (s.bytes / MIB))).toFixed(2),
      cpuCell(samples, row.master, true), cpuCell(samples, row.slave, row.slave.length > 1 || row.floor === undefined),
      cpuCell(samples, ['nats-server'], false), cpuCell(samples, row.program, false),
      `${totalPerGib(samples, all).toFixed(2)} s`,
    ];
  });
  out.push(markdownTable([
    'Stream', `MB/s (median of ${r.runs})`, '% of the raw floor, same direction and pass: median (each pass)', 'messages per MiB',
    'CPU per GiB: master side', 'slave side', 'nats-server', 'the program (shim, dd)', 'all of them',
  ], rows), '');
  out.push(`Each pass runs the five streams one after the other, ${r.sizeBytes / MIB} MiB each, on one nats-server `
    + '(its own agents, bridge and mount, not the other parts\'): pass 1 on every stream, then pass 2, and so on. '
    + 'The raw rows are the transport floor (`bench/transport-floor.ts`), the most a stream could reach: stdout '
    + 'and the read are held against the slave → master floor, the write against master → slave, each pass\'s '
    + 'stream against the floor measured seconds before it in the same pass (the machine\'s other load moves both '
    + `alike), the median of the passes; ✓ marks the issue's "at least ${STREAM_FLOOR_TARGET * 100} % of the raw `
    + 'floor". CPU is user + system seconds per GiB '
    + 'moved, from `/proc/PID/stat` for the long-lived processes (the requester is the bench process itself; '
    + 'the slave side of the mount includes the agent\'s change watcher) and from the shell\'s `times` for the '
    + 'shim and dd (a FUSE write or read costs dd the kernel\'s copy). The median of the passes, each process '
    + 'on its own. Messages per MiB are what nats-server received (its `/varz` in_msgs) and the frames the '
    + 'agents\' links carried (agent.stats) per MiB moved: requests, replies, events, credits and the '
    + 'feed\'s heartbeats together; the mount\'s requests, and the bridge\'s with its commands\' output, go on '
    + 'their session links (docs/architecture.md, "Session links"), past nats-server, whose CPU on those rows '
    + 'is then the change feed\'s and the keepalives\'. The read is cold: the page caches are '
    + 'dropped (the mount\'s and the slave\'s) before each one; the mount keeps no file data of its own.');
  if (r.notes.length > 0) out.push('', `Failed checks: ${r.notes.join('; ')}`);
  return out.join('\n');
}
