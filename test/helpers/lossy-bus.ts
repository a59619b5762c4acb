/**
 * A master's bus that loses chosen process output messages on the way to their subscriber, as
 * NATS drops what is published while a subscriber moves to another server: the failover case
 * of process output (sidecar/remote-process.ts asks the agent to send again).
 */
import { isOutputSubjectOf } from '../../protocol/index.js';
import type { Bus } from '../../transport/bus.js';

/** `inner`, except that messages on `agentId`'s output subjects that `lose` picks never arrive. */
export function lossyBus(inner: Bus, agentId: string, lose: (data: Uint8Array, index: number) => boolean): Bus & { lost: number } {
  let index = 0;
  const bus = {
    lost: 0,
    get maxPayload() { return inner.maxPayload; },
    get connected() { return inner.connected; },
    get server() { return inner.server; },
    get reconnects() { return inner.reconnects; },
    get clientIp() { return inner.clientIp; },
    request: (subject: string, data: Uint8Array, timeoutMs: number) => inner.request(subject, data, timeoutMs),
    requestAll: (subject: string, data: Uint8Array, waitMs: number) => inner.requestAll(subject, data, waitMs),
    serve: (subject: string, handler: Parameters<Bus['serve']>[1], sent?: Parameters<Bus['serve']>[2]) => inner.serve(subject, handler, sent),
    publish: (subject: string, data: Uint8Array) => inner.publish(subject, data),
    flushed: () => inner.flushed(),
    onReconnect: (listener: () => void) => inner.onReconnect(listener),
    close: () => inner.close(),
    subscribe: (subject: string, handler: (data: Uint8Array) => void) => inner.subscribe(subject, (data) => {
      if (isOutputSubjectOf(agentId, subject) && lose(data, index++)) {
        bus.lost++;
        return;
      }
      handler(data);
    }),
  };
  return bus;
}
