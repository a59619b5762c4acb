/**
 * A loopback TCP port nobody listens on now, for a server the bench (or a test) starts. Ports
 * handed out by this process are never handed out again: the kernel may give a port just closed
 * to the next listen(0) (seen: a cluster's leaf node port and its monitor port the same, so the
 * server could not start), and a caller asking for several before it starts anything must get
 * different ones.
 */
import { createServer } from 'node:net';

const given = new Set<number>();

export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    await new Promise((resolve) => server.close(resolve));
    if (address === null || typeof address === 'string') throw new Error('no free port');
    if (given.has(address.port)) continue;
    given.add(address.port);
    return address.port;
  }
  throw new Error('no loopback port not handed out before');
}
