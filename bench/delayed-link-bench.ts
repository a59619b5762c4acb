/**
 * The workloads and single calls over a link with a real round trip: a delay proxy
 * (delay-proxy.c) of D ms each way between the agent and its nats-server, and one between sshfs
 * and its sshd, so each side pays 2·D per round trip it waits for, as a lab across a campus
 * (D = 1 ms) or at another site (D = 5 ms) would make it. Each D has its own nats-server, agent,
 * mount and sshfs, so the bus messages counted per workload are that workload's alone.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureCallBench, type CallBenchResults } from './call-bench.js';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil } from './daemon.js';
import type { Fixtures } from './fixtures.js';
import { runFsBench, type FsBenchResults } from './fs-bench.js';
import { linkFrames } from './link-frames.js';
import { freePort } from './free-port.js';
import { startNatsServer } from './nats-server.js';
import { startSplitbrain } from './splitbrain-target.js';
import { startSshfs } from './sshfs-target.js';
import type { Sshd } from './sshd.js';
import type { Target, TargetName } from './target.js';

/** Built by `npm run build` from bench/delay-proxy.c (native: its header says why). */
const PROXY = fileURLToPath(new URL('./delay-proxy', import.meta.url));
const START_TIMEOUT_MS = 10_000;
const LISTENING = /listening on 127\.0\.0\.1:(\d+)/;

export interface DelayedLinkOptions {
  workDir: string;
  sshd: Sshd | Error;
  fixtures: Fixtures;
  runs: number;
  callIterations: number;
  delaysMs: readonly number[];
  splitbrainOptions: string;
}

export interface DelayedRun {
  delayMs: number;
  startErrors: Map<TargetName, string>;
  fs: FsBenchResults | undefined;
  calls: CallBenchResults | undefined;
  error: string | undefined;
}

export interface DelayedLinkResults {
  runs: DelayedRun[];
  tarEntries: number;
}

/** A delay proxy of `delayMs` each way in front of 127.0.0.1:`port`; resolves with its own port. */
async function startDelayProxy(dir: string, label: string, delayMs: number, port: number, cleanup: Cleanup): Promise<number> {
  const logPath = join(dir, `${label}-proxy.log`);
  const daemon = startDaemon({
    label: `delay proxy (${delayMs} ms) to ${label}`, command: PROXY, args: [String(delayMs), String(port)], logPath,
  }, cleanup);
  return waitUntil(daemon, 'its port in its log', START_TIMEOUT_MS, async () => {
    const found = LISTENING.exec(await readFile(logPath, 'utf8').catch(() => ''))?.[1];
    return found === undefined ? undefined : Number(found);
  });
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

async function measureAt(options: DelayedLinkOptions, delayMs: number, cleanup: Cleanup, progress: (line: string) => void): Promise<DelayedRun> {
  const run: DelayedRun = { delayMs, startErrors: new Map(), fs: undefined, calls: undefined, error: undefined };
  const dir = join(options.workDir, `delay-${delayMs}ms`);
  await mkdir(dir);
  const nats = await startNatsServer(dir, cleanup);
  const targets: Target[] = [];
  try {
    const natsProxy = await startDelayProxy(dir, 'nats-server', delayMs, portOf(nats.url), cleanup);
    // The agent's links (the mount's session link: docs/architecture.md, "Links") cross the same
    // delay: the agent listens behind a proxy of its own and offers the proxy's port.
    const linkPort = await freePort();
    const linkProxy = await startDelayProxy(dir, 'agent-links', delayMs, linkPort, cleanup);
    // The agent on the far side of the link; the mount next to its server, as a master is.
    targets.push(await startSplitbrain(dir, nats.url, options.splitbrainOptions, cleanup, 'bench', `nats://127.0.0.1:${natsProxy}`,
      ['--link', `127.0.0.1:${linkPort}`, '--link-offer', `127.0.0.1:${linkProxy}`]));
  } catch (err) {
    run.startErrors.set('splitbrain', (err as Error).message);
    progress(`delayed link ${delayMs} ms: splitbrain could not start: ${(err as Error).message}`);
  }
  try {
    if (options.sshd instanceof Error) throw options.sshd;
    const sshProxy = await startDelayProxy(dir, 'sshd', delayMs, options.sshd.port, cleanup);
    targets.push(await startSshfs(dir, options.sshd, cleanup, { port: sshProxy, label: 'sshfs' }));
  } catch (err) {
    run.startErrors.set('sshfs', (err as Error).message);
    progress(`delayed link ${delayMs} ms: sshfs could not start: ${(err as Error).message}`);
  }
  const tag = (line: string) => progress(`[${delayMs} ms] ${line}`);
  try {
    run.fs = await runFsBench(targets, options.fixtures, options.runs, tag, {
      target: 'splitbrain', count: async () => (await nats.counts()).inMsgs + await linkFrames(nats.url, 'bench'),
    });
    run.calls = await measureCallBench(targets, options.callIterations, tag);
  } catch (err) {
    run.error = (err as Error).message;
    progress(`delayed link ${delayMs} ms failed: ${run.error}`);
  }
  for (const target of targets) await target.stop?.();
  return run;
}

export async function measureDelayedLink(
  options: DelayedLinkOptions, cleanup: Cleanup, progress: (line: string) => void,
): Promise<DelayedLinkResults> {
  const runs: DelayedRun[] = [];
  for (const delayMs of options.delaysMs) runs.push(await measureAt(options, delayMs, cleanup, progress));
  return { runs, tarEntries: options.fixtures.tarEntries };
}
