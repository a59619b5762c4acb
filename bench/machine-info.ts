/** What the numbers were measured on: one line for the table's header. */
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { runCommand } from './run-command.js';

async function firstLine(script: string): Promise<string> {
  const result = await runCommand(script, { timeoutMs: 10_000 }).catch(() => undefined);
  return (result?.stdout || result?.stderr || '?').trim().split('\n')[0] ?? '?';
}

export async function describeMachine(): Promise<{ machine: string; tools: string }> {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const machine = `${availableParallelism()} cores (nproc), ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, `
    + `Linux ${release()}, Node ${process.version}`;
  const [nats, sshfs, bindfs, git] = await Promise.all([
    firstLine('nats-server --version'), firstLine('sshfs --version 2>&1 | grep -i sshfs'),
    firstLine('bindfs --version'), firstLine('git --version'),
  ]);
  return { machine, tools: [nats, sshfs, bindfs, git].join(', ') };
}

/** The 1-minute load average: other work on the machine makes the numbers noisier. */
export function loadAverage(): string {
  return (loadavg()[0] ?? 0).toFixed(2);
}
