/**
 * Error classes shared by both ends. Each carries the errno name a POSIX program should see.
 */
import { errnoNumber, type ErrnoName } from './errno.js';

/**
 * An operation failed on the slave (or was refused) with a POSIX errno. It is an answer, not a
 * bug: thrown on the hot path (every "no such file" of a lookup), so it carries no stack trace,
 * which cost ~9 us each on the mount's critical path and told nothing about the slave.
 */
export class SlaveError extends Error {
  readonly errnoName: ErrnoName;
  constructor(errnoName: ErrnoName, message: string, options?: { cause?: unknown }) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(message, options);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'SlaveError';
    this.errnoName = errnoName;
  }
  /** Positive errno number. */
  get errno(): number {
    return errnoNumber(this.errnoName);
  }
}

/** A message that does not decode or does not match its op's schema. */
export class ProtocolError extends SlaveError {
  override name = 'ProtocolError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('EPROTO', message, options);
  }
}
