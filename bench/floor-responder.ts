/**
 * The answering side of the transport floor, a process of its own as the agent is:
 * `node floor-responder.js <nats-url> <subject-prefix> <message-bytes>`. It answers reads with
 * a full message, writes and pings with a few bytes, until SIGTERM or SIGINT.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { connectBus } from '../transport/bus.js';
import { floorSubjects } from './floor-subjects.js';

const [natsUrl, prefix, bytesArg] = process.argv.slice(2);
const messageBytes = Number(bytesArg);
if (!natsUrl || !prefix || !(messageBytes > 0)) {
  process.stderr.write('usage: floor-responder.js <nats-url> <subject-prefix> <message-bytes>\n');
  process.exit(2);
}

const bus = await connectBus({ url: natsUrl, name: 'splitbrain-bench-floor-responder', log: pino({ level: 'warn' }) });
const subjects = floorSubjects(prefix);
// One buffer for every reply: the floor measures moving bytes, not producing them.
const block = randomBytes(messageBytes);
const ack = new Uint8Array(8);
const served = await Promise.all([
  bus.serve(subjects.read, async () => block), // responder --1 message--> requester
  bus.serve(subjects.write, async () => ack), // requester --1 message--> responder
  bus.serve(subjects.ping, async (_subject, data) => data),
]);

const stop = () => {
  for (const s of served) s.stop();
  void bus.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
