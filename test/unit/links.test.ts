/**
 * Device links (protocol/link.ts) below the device streams: the framing, cut anywhere;
 * and a real TLS-PSK connection on loopback between the agent's end (agent/links.ts,
 * with a recording dispatcher in place of the agent's) and the master's (transport/agent-link.ts):
 * only the offer's key gets in, once; a link asks only for its own stream.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { Links } from '../../agent/links.js';
import type { Dispatcher } from '../../agent/dispatch.js';
import {
  LinkFrame, LinkFrameReader, ProtocolError, decodeRequest, encodeErrorReply, encodeLinkEvent, encodeLinkReply, encodeLinkRequest, encodeLinkRouted,
  encodeReply, encodeRequest, isLoopbackAddress, linkEventHeader, linkHost, linkRoutedHeader,
  type LinkMessage,
} from '../../protocol/index.js';
import { AgentLink } from '../../transport/agent-link.js';

const log = pino({ level: 'silent' });
const MAX_FRAME = 1 << 20;

function waitFor(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) resolve();
      else if (Date.now() > deadline) reject(new Error(`${what}: not within ${ms} ms`));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

describe('device link frames', () => {
  const event = randomBytes(3000);
  const frames = [
    encodeLinkRequest(7, 'dev.input', Buffer.from('request bytes')),
    encodeLinkReply(7, Buffer.from('reply bytes')),
    Buffer.concat([linkEventHeader(event.length), event]),
    encodeLinkEvent(event),
    encodeLinkRequest(0, 'dev.credit', Buffer.alloc(0)),
    encodeLinkRouted('splitbrain._out.a.b1', event),
    Buffer.concat([linkRoutedHeader('s', event.length), event]),
    encodeLinkRouted('x', Buffer.alloc(0)),
  ];
  const expected: LinkMessage[] = [
    { kind: LinkFrame.REQUEST, callId: 7, op: 'dev.input', data: Buffer.from('request bytes') },
    { kind: LinkFrame.REPLY, callId: 7, data: Buffer.from('reply bytes') },
    { kind: LinkFrame.EVENT, data: event },
    { kind: LinkFrame.EVENT, data: event },
    { kind: LinkFrame.REQUEST, callId: 0, op: 'dev.credit', data: Buffer.alloc(0) },
    { kind: LinkFrame.ROUTED, subject: 'splitbrain._out.a.b1', data: event },
    { kind: LinkFrame.ROUTED, subject: 's', data: event },
    { kind: LinkFrame.ROUTED, subject: 'x', data: Buffer.alloc(0) },
  ];

  it('reads the same messages however the stream is cut', () => {
    const whole = Buffer.concat(frames);
    for (const size of [1, 2, 5, 13, 4096, whole.length]) {
      const reader = new LinkFrameReader(MAX_FRAME);
      const got: LinkMessage[] = [];
      for (let at = 0; at < whole.length; at += size) got.push(...reader.push(whole.subarray(at, at + size)));
      assert.deepEqual(got.map(plain), expected.map(plain), `cut every ${size} bytes`);
    }
  });

  it('refuses a frame over the bound, of an unknown kind, or too short for its kind', () => {
    const big = Buffer.alloc(4);
    big.writeUInt32BE(MAX_FRAME + 1);
    assert.throws(() => new LinkFrameReader(MAX_FRAME).push(big), ProtocolError);
    assert.throws(() => new LinkFrameReader(MAX_FRAME).push(Buffer.from([0, 0, 0, 1, 9])), ProtocolError);
    assert.throws(() => new LinkFrameReader(MAX_FRAME).push(Buffer.from([0, 0, 0, 3, LinkFrame.REPLY, 0, 0])), ProtocolError);
    assert.throws(() => new LinkFrameReader(MAX_FRAME).push(Buffer.from([0, 0, 0, 7, LinkFrame.REQUEST, 0, 0, 0, 1, 5, 65])), ProtocolError);
    // A routed frame whose subject runs past its end.
    assert.throws(() => new LinkFrameReader(MAX_FRAME).push(Buffer.from([0, 0, 0, 3, LinkFrame.ROUTED, 5, 65])), ProtocolError);
  });
});

describe('where a master connects for an offer', () => {
  it('takes the offer\'s address, unless it is loopback and the master reached the NATS server elsewhere', () => {
    assert.equal(linkHost('10.1.2.3', 'nats://bus.lab:4222'), '10.1.2.3');
    assert.equal(linkHost('127.0.0.1', 'nats://slave-1:4222'), 'slave-1');
    assert.equal(linkHost('127.0.0.1', '172.21.0.2:4222'), '172.21.0.2');
    assert.equal(linkHost('127.0.0.1', '[fd00::7]:4222'), 'fd00::7');
    assert.equal(linkHost('::1', 'nats://[fd00::7]:4222'), 'fd00::7');
    assert.equal(linkHost('127.0.0.1', 'nats://127.0.0.1:4222'), '127.0.0.1');
    assert.equal(linkHost('127.0.0.1', 'nats://localhost:4222'), '127.0.0.1');
    assert.equal(linkHost('127.0.0.1', 'not a url'), '127.0.0.1');
    assert.ok(isLoopbackAddress('127.8.9.10') && isLoopbackAddress('::ffff:127.0.0.1') && !isLoopbackAddress('10.0.0.1'));
  });
});

function plain(m: LinkMessage): unknown {
  return { ...m, data: Buffer.from(m.data).toString('hex') };
}

describe('device link connections', () => {
  const asked: { op: string; fh: unknown }[] = [];
  let links: Links | undefined;
  after(() => links?.close());

  // Decodes and admits as the agent's dispatcher does, then records instead of running.
  const dispatch: Dispatcher = async (op, data, admit) => {
    const { args } = decodeRequest(op as 'dev.credit', data);
    if (admit && !admit(op as 'dev.credit', args)) return encodeErrorReply('boot', 'EPERM', 'not admitted');
    asked.push({ op, fh: args.fh });
    return encodeReply('dev.credit', 'boot', {});
  };

  it('lets in only the offer\'s key, once, and carries requests one way and events the other', async () => {
    links = await Links.listen('127.0.0.1', 0, dispatch, MAX_FRAME, log);
    const bus: Uint8Array[] = [];
    const offered = links.offer(5, (event) => bus.push(event));
    offered.sink(Buffer.from('before the link'));
    assert.equal(bus.length, 1, 'events go to the bus while no link is up');

    // A wrong key, then the right one.
    await assert.rejects(AgentLink.connect({ ...offered.offer, key: randomBytes(32) }, () => undefined, MAX_FRAME, 3000));
    const events: Buffer[] = [];
    const link = await AgentLink.connect(offered.offer, (e) => events.push(Buffer.from(e)), MAX_FRAME, 3000);
    // Once: a second connection with the same key is refused.
    await assert.rejects(AgentLink.connect(offered.offer, () => undefined, MAX_FRAME, 3000));

    const reply = await link.call('dev.credit', encodeRequest('dev.credit', 'c:1', { fh: 5, bytes: 1, received: 0 }));
    assert.ok(reply.length > 0);
    assert.deepEqual(asked, [{ op: 'dev.credit', fh: 5 }]);
    await waitFor('the link at the agent', () => {
      offered.sink(Buffer.from('on the link'));
      return events.length > 0;
    });
    assert.equal(events[0]?.toString(), 'on the link');

    // Another stream's handle, or an op that is not a stream's: the link is closed.
    let closed = false;
    link.onClose(() => { closed = true; });
    assert.ok(link.send('dev.credit', encodeRequest('dev.credit', 'c:2', { fh: 6, bytes: 1, received: 0 })));
    await waitFor('the link closed', () => closed);
    assert.deepEqual(asked, [{ op: 'dev.credit', fh: 5 }], 'nothing for another handle was dispatched');
    const busBefore = bus.length;
    offered.sink(Buffer.from('after the link'));
    assert.equal(bus.length, busBefore + 1, 'events go to the bus again once the link is gone');
    offered.close();
  });

  it('keeps serving after connections that reset at once or speak no TLS', async () => {
    links ??= await Links.listen('127.0.0.1', 0, dispatch, MAX_FRAME, log);
    const port = links.port;
    for (let i = 0; i < 5; i++) {
      // A reset before TLS is even loaded, then garbage instead of a handshake.
      const reset = net.connect(port, '127.0.0.1');
      await once(reset, 'connect');
      reset.resetAndDestroy();
      const junk = net.connect(port, '127.0.0.1');
      junk.on('error', () => undefined);
      await once(junk, 'connect');
      junk.end(Buffer.from('GET / HTTP/1.0\r\n\r\n'));
      await once(junk, 'close');
    }
    const offered = links.offer(11, () => undefined);
    const link = await AgentLink.connect(offered.offer, () => undefined, MAX_FRAME, 3000);
    assert.ok(link.isOpen);
    link.close();
    offered.close();
  });

  it('closes a link that asks for an op outside its stream\'s', async () => {
    links ??= await Links.listen('127.0.0.1', 0, dispatch, MAX_FRAME, log);
    const offered = links.offer(9, () => undefined);
    const link = await AgentLink.connect(offered.offer, () => undefined, MAX_FRAME, 3000);
    let closed = false;
    link.onClose(() => { closed = true; });
    const before = asked.length;
    link.send('fs.unlink', encodeRequest('fs.unlink', 'c:3', { path: '/etc/passwd' }));
    await waitFor('the link closed', () => closed);
    assert.equal(asked.length, before);
    offered.close();
  });
});

describe('events routed down a session link', () => {
  let links: Links | undefined;
  after(() => links?.close());
  const dispatch: Dispatcher = async () => encodeReply('agent.link', 'boot', { link: null });

  it('go down the link named while it is up, to nobody else; then back to the bus', async () => {
    links = await Links.listen('127.0.0.1', 0, dispatch, MAX_FRAME, log);
    const offer = links.offerSession();
    const other = links.offerSession();
    assert.ok(offer && other);
    assert.equal(links.routeTo(offer.identity), undefined, 'no route before the link is up');
    const routed: [string, string][] = [];
    const link = await AgentLink.connect(offer, () => undefined, MAX_FRAME, 3000, (subject, event) => routed.push([subject, Buffer.from(event).toString()]));
    const otherRouted: string[] = [];
    const otherLink = await AgentLink.connect(other, () => undefined, MAX_FRAME, 3000, (subject) => otherRouted.push(subject));
    await waitFor('the link at the agent', () => links?.routeTo(offer.identity) !== undefined);
    const route = links.routeTo(offer.identity);
    assert.ok(route);
    const big = randomBytes(64 * 1024);
    assert.equal(route('out.a', Buffer.from('first')), true);
    assert.equal(route('out.b', big), true);
    assert.equal(route('out.a', Buffer.from('third')), true);
    // A subject no frame can name stays on the bus.
    assert.equal(route('x'.repeat(256), Buffer.from('long')), false);
    await waitFor('the routed events', () => routed.length === 3);
    assert.deepEqual(routed, [['out.a', 'first'], ['out.b', big.toString()], ['out.a', 'third']]);
    assert.deepEqual(otherRouted, [], 'another master\'s link gets none of it');
    assert.equal(links.routeTo('0123456789abcdef'), undefined, 'an identity never offered routes nowhere');

    link.close();
    await waitFor('the link gone at the agent', () => !route('out.a', Buffer.from('late')));
    assert.equal(links.routeTo(offer.identity), undefined);
    otherLink.close();
  });
});
