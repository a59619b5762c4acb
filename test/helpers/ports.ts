/** A loopback TCP port nobody listens on now, for a server the test starts (--metrics, NATS_PORT): the bench's, one piece for both. */
export { freePort } from '../../bench/free-port.js';
