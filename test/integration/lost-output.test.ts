/**
 * Issue 15: process output that NATS drops on the way (as it does while a subscriber moves to
 * another server) is sent again: the master notices the gap, or the agent ahead of it, and asks
 * for it, and the agent kept it. A real agent and nats-server; the master's bus is wrapped to
 * lose chosen messages of the process's output subject, the exit event included.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { decodeEvent, isOutputSubjectOf } from '../../protocol/index.js';
import { ProcessClient } from '../../sidecar/remote-process.js';
import { AgentClient } from '../../transport/agent-client.js';
import { connectBus, type Bus } from '../../transport/bus.js';
import { startBareAgent, type BareAgent } from '../helpers/slave.js';

const log = pino({ level: 'silent' });

/** `inner`, except that output messages `lose` picks never reach their subscriber. */
function lossy(inner: Bus, lose: (data: Uint8Array, index: number) => boolean): Bus & { lost: number } {
  let index = 0;
  const bus = {
    lost: 0,
    get maxPayload() { return inner.maxPayload; },
    get connected() { return inner.connected; },
    get server() { return inner.server; },
    get reconnects() { return inner.reconnects; },
    request: (subject: string, data: Uint8Array, timeoutMs: number) => inner.request(subject, data, timeoutMs),
    requestAll: (subject: string, data: Uint8Array, waitMs: number) => inner.requestAll(subject, data, waitMs),
    serve: (subject: string, handler: Parameters<Bus['serve']>[1], sent?: Parameters<Bus['serve']>[2]) => inner.serve(subject, handler, sent),
    publish: (subject: string, data: Uint8Array) => inner.publish(subject, data),
    flushed: () => inner.flushed(),
    onReconnect: (listener: () => void) => inner.onReconnect(listener),
    close: () => inner.close(),
    subscribe: (subject: string, handler: (data: Uint8Array) => void) => inner.subscribe(subject, (data) => {
      if (isOutputSubjectOf('lossy-slave', subject) && lose(data, index++)) {
        bus.lost++;
        return;
      }
      handler(data);
    }),
  };
  return bus;
}

describe('process output lost on the bus', () => {
  let slave: BareAgent;
  let inner: Bus;

  before(async () => {
    slave = await startBareAgent({ id: 'lossy-slave' });
    inner = await connectBus({ url: slave.nats.url, name: 'test', log });
  });
  after(async () => {
    await inner?.close();
    await slave?.stop();
  });

  async function runLossy(script: string, lose: (data: Uint8Array, index: number) => boolean): Promise<{ out: string; code: number | null; lost: number }> {
    const bus = lossy(inner, lose);
    const procs = new ProcessClient(new AgentClient(bus, 'lossy-slave', { timeoutMs: 5000, log }), log);
    try {
      let out = '';
      const proc = await procs.spawn({ argv: ['sh', '-c', script], env: {}, cwd: '/', pty: null }, {
        stdout: (data, written) => { out += data.toString(); written(); },
        stderr: (_data, written) => written(),
      });
      const { code } = await proc.exited;
      return { out, code, lost: bus.lost };
    } finally {
      procs.close();
    }
  }

  it('sends again what was lost in the middle of the output: all of it arrives, in order', async () => {
    // Output in many events: a line, then a pause, so each line is an event of its own.
    const { out, code, lost } = await runLossy('for i in $(seq 1 40); do echo line $i; sleep 0.01; done',
      (_data, index) => index === 3 || index === 10 || index === 11 || index === 25);
    assert.equal(code, 0);
    assert.equal(lost, 4);
    assert.equal(out, Array.from({ length: 40 }, (_, i) => `line ${i + 1}\n`).join(''));
  });

  it('sends the exit again when it was the one lost (the keepalive shows the agent ahead)', async () => {
    let exits = 0;
    const { out, code, lost } = await runLossy('echo only; exit 7', (data) => 'exit' in decodeEvent(data) && exits++ === 0);
    assert.equal(code, 7);
    assert.equal(lost, 1);
    assert.equal(out, 'only\n');
  });
});
