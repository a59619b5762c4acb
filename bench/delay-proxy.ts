/**
 * A link with a real round trip, in user space (this kernel has no netem): a TCP proxy on
 * loopback that hands every byte on `delayMs` after it arrived, each way, in order, without
 * holding up what follows it (a pipe of that latency, not a stop-and-wait hop), so throughput
 * is what the ends make of it. The bench puts one between the agent and its nats-server and one
 * between sshfs and its sshd.
 *
 *   node delay-proxy.js DELAY_MS TARGET_PORT   (prints "listening on 127.0.0.1:PORT")
 *
 * Its own process: its timers must not wait behind the bench's work.
 */
import { createConnection, createServer, type Socket } from 'node:net';

/** A direction holding this much in flight stops reading: TCP then pushes back on the sender. */
const HIGH_WATER = 8 * 1024 * 1024;

/** Delays `from`'s bytes by `delayMs` on their way to `to`; ends `to` once `from` ends and all is out. */
function delayed(from: Socket, to: Socket, delayMs: number): void {
  const queue: { due: number; data: Buffer }[] = [];
  let queued = 0;
  let timer: NodeJS.Timeout | undefined;
  let ended = false;
  /** `to` holds more than it can send: reading waits for its drain, as a link would push back. */
  let blocked = false;
  const resumeIfRoom = (): void => {
    if (!blocked && queued < HIGH_WATER && from.isPaused()) from.resume();
  };
  to.on('drain', () => {
    blocked = false;
    resumeIfRoom();
  });
  const drain = (): void => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && (queue[0] as { due: number }).due <= now) {
      const { data } = queue.shift() as { due: number; data: Buffer };
      queued -= data.length;
      if (!to.write(data)) blocked = true;
    }
    if (blocked) from.pause();
    resumeIfRoom();
    if (queue.length > 0) schedule();
    else if (ended) to.end();
  };
  const schedule = (): void => {
    if (timer !== undefined || queue.length === 0) return;
    timer = setTimeout(drain, Math.max(0, (queue[0] as { due: number }).due - performance.now()));
  };
  from.on('data', (data: Buffer) => {
    queue.push({ due: performance.now() + delayMs, data });
    queued += data.length;
    if (queued >= HIGH_WATER) from.pause();
    schedule();
  });
  from.on('end', () => {
    ended = true;
    if (queue.length === 0) to.end();
  });
}

function main(): void {
  const [delayArg, portArg] = process.argv.slice(2);
  const delayMs = Number(delayArg);
  const port = Number(portArg);
  if (!Number.isFinite(delayMs) || delayMs < 0 || !Number.isInteger(port) || port <= 0 || port > 65_535) {
    process.stderr.write('usage: delay-proxy.js DELAY_MS TARGET_PORT\n');
    process.exit(2);
  }
  const server = createServer({ noDelay: true }, (client) => {
    const upstream = createConnection({ host: '127.0.0.1', port, noDelay: true });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    // A side that went without ending (reset) takes the other with it, once what it sent is out.
    client.on('close', () => setTimeout(() => upstream.destroy(), delayMs + 100).unref());
    upstream.on('close', () => setTimeout(() => client.destroy(), delayMs + 100).unref());
    delayed(client, upstream, delayMs);
    delayed(upstream, client, delayMs);
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (typeof address === 'object' && address) process.stdout.write(`listening on 127.0.0.1:${address.port}\n`);
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
}

main();
