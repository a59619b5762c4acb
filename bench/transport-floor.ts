/**
 * The raw transport floor: nats.js request-reply through the same nats-server, between two
 * processes, as the mount and the agent talk, with nothing of the filesystem in between. Bulk
 * throughput each way with several requests in flight, and the round trip of a tiny request.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { connectBus, type Bus } from '../transport/bus.js';
import type { Cleanup } from './cleanup.js';
import { startDaemon, waitUntil } from './daemon.js';
import { floorSubjects } from './floor-subjects.js';
import { median } from './stats.js';

const RESPONDER = fileURLToPath(new URL('./floor-responder.js', import.meta.url));
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_MESSAGE = 1024 * 1024;
export const IN_FLIGHT = 4;
export const RTT_REQUESTS = 2000;

export class FloorReplyError extends Error {
  override name = 'FloorReplyError';
}

export interface FloorResult {
  messageBytes: number;
  inFlight: number;
  /** One per run, MB/s (10^6 bytes). */
  readMBps: number[];
  writeMBps: number[];
  /** Median round trip of a 16-byte request, microseconds, over every run's requests. */
  rttMedianUs: number;
  rttP99Us: number;
}

/** Sends `count` requests, `inFlight` at a time; resolves with the wall-clock milliseconds. */
async function pump(count: number, inFlight: number, one: () => Promise<void>): Promise<number> {
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      await one();
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return performance.now() - t0;
}

async function roundTrips(bus: Bus, subject: string, count: number): Promise<number[]> {
  const ping = randomBytes(16);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await bus.request(subject, ping, REQUEST_TIMEOUT_MS);
    samples.push((performance.now() - t0) * 1000);
  }
  return samples;
}

/** A floor responder running, and the requests that time it from this process. */
export interface FloorSession {
  messageBytes: number;
  /** The answering process, a Node process of its own as the agent is. */
  responderPid: number;
  /** Moves `count` messages responder --> requester (replies); resolves with the milliseconds. */
  read(count: number): Promise<number>;
  /** Moves `count` messages requester --> responder (requests); resolves with the milliseconds. */
  write(count: number): Promise<number>;
  /** `count` sequential 16-byte round trips, microseconds each. */
  roundTrips(count: number): Promise<number[]>;
  stop(): Promise<void>;
}

/**
 * Starts the responder and warms the path up. `responderUrl`: where the responder connects
 * (default: `natsUrl`, the requester's server); a leaf node's URL measures the path through the
 * leaf connection.
 */
export async function startFloor(
  natsUrl: string, workDir: string, cleanup: Cleanup, responderUrl = natsUrl,
): Promise<FloorSession> {
  const bus = await connectBus({ url: natsUrl, name: 'splitbrain-bench-floor', log: pino({ level: 'warn' }) });
  const prefix = `bench.floor.${randomBytes(4).toString('hex')}`;
  const subjects = floorSubjects(prefix);
  const messageBytes = Math.min(MAX_MESSAGE, bus.maxPayload);
  const responder = startDaemon({
    label: 'floor responder', command: process.execPath, logPath: join(workDir, `floor-responder-${prefix}.log`),
    args: [RESPONDER, responderUrl, prefix, String(messageBytes)],
  }, cleanup);
  const stop = async () => {
    await responder.stop();
    await bus.close();
  };
  try {
    // Its subscriptions reach the server a moment after it starts: ping until one is answered.
    await waitUntil(responder, 'answer to a ping', 10_000,
      () => bus.request(subjects.ping, new Uint8Array(1), 500).then(() => true, () => undefined));
    const block = randomBytes(messageBytes);
    const readOne = async () => {
      const reply = await bus.request(subjects.read, new Uint8Array(8), REQUEST_TIMEOUT_MS);
      if (reply.length !== messageBytes) {
        throw new FloorReplyError(`read reply of ${reply.length} bytes, expected ${messageBytes}`);
      }
    };
    const writeOne = async () => { await bus.request(subjects.write, block, REQUEST_TIMEOUT_MS); };
    const session: FloorSession = {
      messageBytes, responderPid: responder.pid,
      read: (count) => pump(count, IN_FLIGHT, readOne),
      write: (count) => pump(count, IN_FLIGHT, writeOne),
      roundTrips: (count) => roundTrips(bus, subjects.ping, count),
      stop,
    };
    // Warm-up: connections, buffers, JIT.
    await session.read(16);
    await session.write(16);
    await session.roundTrips(100);
    return session;
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function measureTransportFloor(
  natsUrl: string, workDir: string, sizeBytes: number, runs: number, cleanup: Cleanup,
  progress: (line: string) => void, responderUrl = natsUrl, label = 'raw floor',
): Promise<FloorResult> {
  const floor = await startFloor(natsUrl, workDir, cleanup, responderUrl);
  try {
    const { messageBytes } = floor;
    const count = Math.ceil(sizeBytes / messageBytes);
    const result: FloorResult = {
      messageBytes, inFlight: IN_FLIGHT, readMBps: [], writeMBps: [], rttMedianUs: 0, rttP99Us: 0,
    };
    const rtts: number[] = [];
    const mb = (count * messageBytes) / 1e6;
    for (let run = 1; run <= runs; run++) {
      result.readMBps.push(mb / ((await floor.read(count)) / 1000));
      result.writeMBps.push(mb / ((await floor.write(count)) / 1000));
      rtts.push(...(await floor.roundTrips(RTT_REQUESTS)));
      progress(`[pass ${run}/${runs}] ${label}  read ${result.readMBps.at(-1)?.toFixed(0)} MB/s, `
        + `write ${result.writeMBps.at(-1)?.toFixed(0)} MB/s, round trip median ${median(rtts).toFixed(0)} µs`);
    }
    rtts.sort((a, b) => a - b);
    result.rttMedianUs = median(rtts);
    result.rttP99Us = rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * 0.99))] ?? 0;
    return result;
  } finally {
    await floor.stop();
  }
}
