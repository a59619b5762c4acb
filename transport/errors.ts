/**
 * Why a request got no answer. All of them reach a POSIX program as EIO, as a dead NFS or sshfs
 * server does; the reason is kept for logs and for the reconnection logic.
 */
import { SlaveError } from '../protocol/index.js';

export type UnreachableReason = 'timeout' | 'no-responders' | 'disconnected';

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
