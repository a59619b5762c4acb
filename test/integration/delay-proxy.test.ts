/**
 * The bench's delay proxy (bench/delay-proxy.c), in front of an echo server made here: every
 * byte comes through, in order, no sooner than the delay each way; a clean end is handed on as
 * a half-close once what came before it is out; bad arguments get the usage and status 2. What
 * the delayed-link figures in docs/performance.md stand on.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { run, spawnCollecting, stopProcess, waitFor, type CollectingProcess } from '../helpers/processes.js';

const PROXY = fileURLToPath(new URL('../../bench/delay-proxy', import.meta.url));
const DELAY_MS = 20;
const WAIT_MS = 10_000;

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${WAIT_MS} ms`)), WAIT_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

const LISTENING = /listening on 127\.0\.0\.1:(\d+)/;

/** Starts the proxy in front of `port`; resolves with it and the port it listens on. */
async function startProxy(delayMs: number, port: number): Promise<{ process: CollectingProcess; port: number }> {
  const proxy = spawnCollecting(PROXY, [String(delayMs), String(port)]);
  await waitFor('the proxy\'s port', () => {
    if (proxy.child.exitCode !== null) throw new Error(`the proxy exited (${proxy.child.exitCode}) before listening: ${proxy.stderr()}`);
    return LISTENING.test(proxy.stdout());
  }, WAIT_MS, 10);
  return { process: proxy, port: Number(LISTENING.exec(proxy.stdout())?.[1]) };
}

async function connect(port: number): Promise<Socket> {
  const socket = createConnection({ host: '127.0.0.1', port, noDelay: true });
  await withDeadline(once(socket, 'connect'), 'connecting through the proxy');
  return socket;
}

/** Reads from `socket` until `count` bytes came. */
function readBytes(socket: Socket, count: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return withDeadline(new Promise<Buffer>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= count) {
        socket.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  }), `reading ${count} bytes`);
}

describe('the bench\'s delay proxy', () => {
  let echo: Server;
  let proxy: { process: CollectingProcess; port: number };
  /** What the echo server saw each connection end with, in order. */
  const ends: string[] = [];

  before(async () => {
    echo = createServer({ noDelay: true }, (socket) => {
      let seen = 0;
      socket.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        socket.write(chunk);
      });
      // A half-close from the client: answer with the count, then end this side too.
      socket.on('end', () => {
        ends.push(`end after ${seen}`);
        socket.end(`seen ${seen}`);
      });
      socket.on('error', () => socket.destroy());
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    proxy = await startProxy(DELAY_MS, (echo.address() as AddressInfo).port);
  });

  after(async () => {
    if (proxy) await stopProcess(proxy.process.child);
    echo?.close();
  });

  it('delays a round trip by the delay each way', async () => {
    const socket = await connect(proxy.port);
    try {
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        socket.write(Buffer.from([i]));
        const [byte] = await readBytes(socket, 1);
        const tookMs = performance.now() - started;
        assert.equal(byte, i);
        assert.ok(tookMs >= 2 * DELAY_MS - 1, `round trip ${i} took ${tookMs.toFixed(2)} ms, under 2 x ${DELAY_MS} ms`);
      }
    } finally {
      socket.destroy();
    }
  });

  it('hands every byte on in order, in chunks of any size, both ways at once', async () => {
    const socket = await connect(proxy.port);
    try {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const back = readBytes(socket, data.length);
      for (let at = 0; at < data.length;) {
        const size = Math.min(data.length - at, 1 + Math.floor(Math.random() * 200_000));
        if (!socket.write(data.subarray(at, at + size))) await once(socket, 'drain');
        at += size;
      }
      assert.ok((await back).equals(data), 'the bytes that came back differ from those sent');
    } finally {
      socket.destroy();
    }
  });

  it('hands a clean end on as a half-close, after the bytes before it', async () => {
    const socket = await connect(proxy.port);
    const payload = randomBytes(100_000);
    let reply = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => { reply = Buffer.concat([reply, chunk]); });
    const ended = withDeadline(once(socket, 'end'), 'the far side\'s end');
    socket.end(payload);
    await ended;
    assert.ok(reply.subarray(0, payload.length).equals(payload), 'the echo differs');
    assert.equal(reply.subarray(payload.length).toString(), `seen ${payload.length}`);
    assert.ok(ends.includes(`end after ${payload.length}`), `the echo server saw: ${ends.join(', ')}`);
    socket.destroy();
  });

  it('refuses bad arguments with its usage and status 2', async () => {
    for (const args of [[], ['1'], ['x', '80'], ['1', '0'], ['-1', '80'], ['1', '70000']]) {
      const { code, stderr } = await run(PROXY, args, { timeoutMs: WAIT_MS });
      assert.equal(code, 2, `status for ${JSON.stringify(args)}`);
      assert.match(stderr, /usage: delay-proxy DELAY_MS TARGET_PORT/);
    }
  });
});
