/**
 * The cork's timer (transport/request-batch.ts) with a carry of our own, so that a message can
 * be kept on its way as long as the test likes: held requests wait while held ones sent before
 * are unanswered (the program waits for those), and go once quiet after the answer, however long
 * that takes.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { decodeRequest, encodeReply, encodeRequest, type OpName } from '../../protocol/index.js';
import { CORK_MAX_MS, CORK_MS, RequestBatch } from '../../transport/request-batch.js';

const BOOT = 'test-boot';

/** A carry that records what it sends and answers only when told. */
function heldCarry() {
  const sent: string[][] = [];
  /** When each was sent (performance.now()). */
  const sentAt: number[] = [];
  const answers: (() => void)[] = [];
  const carry = (op: OpName, message: Uint8Array): Promise<Uint8Array> => {
    const ops = op === 'agent.batch' ? decodeRequest('agent.batch', message).args.requests.map(([inner]) => inner) : [op];
    sent.push(ops);
    sentAt.push(performance.now());
    return new Promise((resolve) => {
      answers.push(() => resolve(op === 'agent.batch'
        ? encodeReply('agent.batch', BOOT, { replies: ops.map(() => encodeReply('fs.release', BOOT, {})) })
        : encodeReply('fs.release', BOOT, {})));
    });
  };
  return { sent, sentAt, answers, carry };
}

let nextFh = 1;
const release = (): Uint8Array => encodeRequest('fs.release', `t:${nextFh}`, { fh: nextFh++ });

/**
 * A file's data and times sent ahead at the end of the turn (`soon()`), then its owner and mode
 * held while the program waits for the data's answer; `heldAt`: when the second joined.
 */
async function sentAheadThenHeld() {
  const carried = heldCarry();
  const batch = new RequestBatch(carried.carry, 't', 1 << 20);
  void batch.request('fs.release', release(), 5000, true);
  batch.soon();
  await new Promise((resolve) => setImmediate(resolve));
  const sentAhead = carried.sent.length;
  const heldAt = performance.now();
  void batch.request('fs.release', release(), 5000, true);
  return { ...carried, batch, sentAhead, heldAt };
}

describe('the cork while held requests are on their way', () => {
  it('keeps what is held while a message sent ahead is unanswered, and sends it once quiet after the answer', async () => {
    const { sent, sentAt, answers, sentAhead, heldAt } = await sentAheadThenHeld();
    assert.equal(sentAhead, 1);
    await sleep(CORK_MS * 3);
    const answeredAt = performance.now();
    answers[0]?.();
    await sleep(CORK_MS * 3);
    assert.deepEqual(sent[1], ['fs.release'], 'sent once quiet after the answer');
    // Times, not a count at one moment: a loop stalled past CORK_MAX_MS sends it by that bound.
    assert.ok((sentAt[1] ?? 0) >= Math.min(answeredAt, heldAt + CORK_MAX_MS),
      'quiet while the data is on its way is no pause of the program\'s: not sent before its answer');
  });

  it('counts the quiet from the answer: what the program does next travels with what waited', async () => {
    const { sent, answers, batch } = await sentAheadThenHeld();
    // The close waits longer than CORK_MS for the data.
    await sleep(CORK_MS * 2);
    answers[0]?.();
    // The close returns, and the program's next file begins at once.
    await new Promise((resolve) => setImmediate(resolve));
    void batch.request('fs.release', release(), 5000, true);
    await sleep(CORK_MS * 4);
    assert.deepEqual(sent[1], ['fs.release', 'fs.release'], 'one message: the held requests did not go alone at the first quiet after the answer');
  });

  it('holds what is held past CORK_MAX_MS while a message sent ahead is unanswered, and sends it once quiet after the answer', async () => {
    const { sent, answers } = await sentAheadThenHeld();
    // A round trip longer than the cork's limit (another site's): what is held waits for it.
    await sleep(CORK_MAX_MS + CORK_MS * 3);
    assert.equal(sent.length, 1, 'not sent alone at CORK_MAX_MS while the message sent ahead is on its way');
    answers[0]?.();
    await sleep(CORK_MS * 4);
    assert.equal(sent.length, 2, 'sent once quiet after the answer');
  });
});
