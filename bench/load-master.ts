/**
 * One master of the load test (cluster-bench.ts), a process of its own as a CI job would be:
 * `node load-master.js <nats urls> <agent id> <mount path> <seconds>`. Against its own slave,
 * through its mount, it runs rounds of create + write 4 KiB, read back, stat, unlink (and a
 * stat that must fail), and every fourth round a bridged `true` through the agent's process
 * service, as the exec shim runs it; each result is checked. It prints one JSON line: the
 * operations done by kind, the latency of each (µs), and every check that failed.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { ProcessClient } from '../sidecar/remote-process.js';
import { AgentClient } from '../transport/agent-client.js';
import { connectBus } from '../transport/bus.js';

export interface LoadMasterReport {
  ops: Record<string, number>;
  /** Microseconds of every operation, all kinds together. */
  latenciesUs: number[];
  failures: string[];
  seconds: number;
}

const [urls, agentId, mountPath, seconds] = process.argv.slice(2);
if (!urls || !agentId || !mountPath || !seconds) {
  process.stderr.write('usage: load-master.js <nats urls> <agent id> <mount path> <seconds>\n');
  process.exit(2);
}

const log = pino({ level: 'warn' });
const bus = await connectBus({ url: urls, name: `splitbrain-load-${agentId}`, log });
const client = new AgentClient(bus, agentId, { timeoutMs: 30_000, slaveWaitMs: 60_000, log });
await client.hello();
const procs = new ProcessClient(client, log);
const report: LoadMasterReport = { ops: {}, latenciesUs: [], failures: [], seconds: Number(seconds) };

async function timed<T>(kind: string, work: () => Promise<T>): Promise<T | undefined> {
  const t0 = performance.now();
  try {
    return await work();
  } catch (err) {
    report.failures.push(`${kind}: ${(err as Error).message}`);
    return undefined;
  } finally {
    report.latenciesUs.push((performance.now() - t0) * 1000);
    report.ops[kind] = (report.ops[kind] ?? 0) + 1;
  }
}

function check(ok: boolean, what: string): void {
  if (!ok) report.failures.push(what);
}

const deadline = Date.now() + Number(seconds) * 1000;
for (let round = 0; Date.now() < deadline; round++) {
  const path = join(mountPath, `f${round % 64}`);
  const data = randomBytes(4096);
  await timed('create+write', async () => {
    const file = await open(path, 'wx');
    try {
      await file.write(data, 0, data.length, 0);
    } finally {
      await file.close();
    }
  });
  const back = await timed('read', () => readFile(path));
  check(back !== undefined && back.equals(data), `round ${round}: read back differs`);
  const st = await timed('stat', () => stat(path));
  check(st?.size === data.length, `round ${round}: stat size ${st?.size}`);
  await timed('unlink', () => unlink(path));
  const gone = await stat(path).then(() => false, (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
  check(gone, `round ${round}: still there after unlink`);
  if (round % 4 === 0) {
    const status = await timed('bridged true', async () => {
      const proc = await procs.spawn({ argv: ['true'], env: {}, cwd: '/', pty: null }, {
        stdout: (_d, written) => written(), stderr: (_d, written) => written(),
      });
      return proc.exited;
    });
    check(status?.code === 0, `round ${round}: true exited ${status?.code}`);
  }
}
procs.close();
await bus.close();
process.stdout.write(`${JSON.stringify(report)}\n`);
