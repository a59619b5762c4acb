/** Certificates for TLS tests, made with openssl at test time, and a plain-TCP probe. */
import { mkdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { sh } from './processes.js';

export interface TestPki {
  /** The CA clients must trust. */
  readonly ca: string;
  /** A certificate for 127.0.0.1 and localhost, signed by the CA, and its key. */
  readonly serverCert: string;
  readonly serverKey: string;
}

export async function makeTestPki(dir: string): Promise<TestPki> {
  await mkdir(dir, { recursive: true });
  await sh([
    `cd '${dir}'`,
    'openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=splitbrain-test-ca 2>/dev/null',
    'openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null',
    'printf "subjectAltName=IP:127.0.0.1,DNS:localhost\\n" > san.ext',
    'openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile san.ext 2>/dev/null',
  ].join(' && '));
  return { ca: join(dir, 'ca.pem'), serverCert: join(dir, 'server.pem'), serverKey: join(dir, 'server.key') };
}

/** What a NATS server says to a client that sends CONNECT and PING over plain TCP, and whether it hung up. */
export function plainTcpAnswer(port: number): Promise<{ said: string; closed: boolean }> {
  return new Promise((resolve) => {
    let said = '';
    const socket = connect(port, '127.0.0.1', () => socket.write('CONNECT {"verbose":false}\r\nPING\r\n'));
    const timer = setTimeout(() => { socket.destroy(); resolve({ said, closed: false }); }, 5000);
    socket.on('data', (d: Buffer) => { said += d.toString(); });
    socket.on('close', () => { clearTimeout(timer); resolve({ said, closed: true }); });
    socket.on('error', () => undefined);
  });
}
