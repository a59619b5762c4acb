/**
 * Why a request got no answer. All of them reach a POSIX program as EIO, as a dead NFS or sshfs
 * server does; the reason is kept for logs and for the reconnection logic.
 */
import { DISCOVER_SUBJECT, SlaveError } from '../protocol/index.js';

/**
 * 'closed': our own connection was closed (we are shutting down, or nats.js gave up on it), so
 * asking again cannot help: unlike the others, it is never retried. 'link-lost': the session link
 * it went on closed or was given up before the reply came: asked again on the bus at once
 * (transport/session-link.ts).
 */
export type UnreachableReason = 'timeout' | 'no-responders' | 'disconnected' | 'closed' | 'link-lost';

export class AgentUnreachableError extends SlaveError {
  override name = 'AgentUnreachableError';
  readonly reason: UnreachableReason;
  constructor(reason: UnreachableReason, message: string, options?: { cause?: unknown }) {
    super('EIO', message, options);
    this.reason = reason;
  }
}

/** The bus could not be reached or refused us (bad URL, auth, TLS). */
export class BusConnectError extends Error {
  override name = 'BusConnectError';
}

/**
 * The NATS server's subject permissions forbid what we asked: this user was not granted the
 * agent (or, for an agent, the id) it tried to use. Reaches a POSIX program as EACCES, and is
 * never retried: asking again cannot change the server's mind.
 */
export class BusPermissionError extends SlaveError {
  override name = 'BusPermissionError';
  constructor(operation: 'publish' | 'subscription', subject: string) {
    super('EACCES', operation === 'subscription'
      ? `the NATS server does not allow this user to subscribe to ${subject} (permissions violation)${
        subject.startsWith('_INBOX') ? ': give --inbox-prefix as the server grants this user (e.g. _INBOX_<user>)' : ''}`
      : subject === DISCOVER_SUBJECT
        ? `the NATS server does not allow this user to discover agents (send to ${subject}, permissions violation): name the agent with --agent`
        : `the NATS server does not allow this user to send to ${subject} (permissions violation): it was not granted that agent`);
  }
}
