/**
 * The device bench's floor of a relay through NATS: the least any terminal relay over this bus
 * can do, with the processes splitbrain's route has (two Node processes and the nats-server
 * between them), none of its protocol. Two roles:
 *
 *   node nats-echo-relay.js master <nats-url> <subject-prefix>   listens on 127.0.0.1 (its port
 *     in its log as `listening PORT`), publishes what the connection sends, writes back what comes
 *   node nats-echo-relay.js device <nats-url> <subject-prefix> <tty>   writes what comes to the
 *     terminal, publishes what the terminal answers
 *
 *   client --tcp--> master --nats--> device --> pty board --> device --nats--> master --tcp--> client
 *
 * Each byte is one plain publish each way: no numbering, credit, acknowledgement or encoding.
 */
import { openSync, writeSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { ReadStream } from 'node:tty';
import { pino } from 'pino';
import { connectBus } from '../transport/bus.js';

const [role, natsUrl, prefix, tty] = process.argv.slice(2);
if ((role !== 'master' && role !== 'device') || !natsUrl || !prefix || (role === 'device' && !tty)) {
  process.stderr.write('usage: nats-echo-relay.js master <nats-url> <prefix> | device <nats-url> <prefix> <tty>\n');
  process.exit(2);
}
const bus = await connectBus({ url: natsUrl, name: `splitbrain-bench-echo-${role}`, log: pino({ level: 'warn' }) });
const toDevice = `${prefix}.in`;
const toMaster = `${prefix}.out`;
const stop = () => void bus.close().finally(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

if (role === 'device') {
  const fd = openSync(tty as string, 'r+');
  const terminal = new ReadStream(fd);
  terminal.on('data', (chunk: Buffer) => bus.publish(toMaster, chunk));
  terminal.on('error', (err) => { // the board went away: this route is over
    process.stderr.write(`terminal ${tty as string}: ${err.message}\n`);
    stop();
  });
  // A byte into a raw terminal's queue does not block: written at once, the least a relay can do.
  await bus.subscribe(toDevice, (data) => writeSync(fd, data));
  process.stdout.write('ready\n');
} else {
  let connection: Socket | undefined;
  await bus.subscribe(toMaster, (data) => connection?.write(data));
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    connection = socket;
    socket.on('data', (chunk: Buffer) => bus.publish(toDevice, chunk));
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address && typeof address === 'object') process.stdout.write(`listening ${address.port}\n`);
  });
}
