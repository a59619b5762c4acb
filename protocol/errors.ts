/**
 * Error classes shared by both ends. Each carries the errno name a POSIX program should see.
 */
import { errnoNumber, type ErrnoName } from './errno.js';

/** An operation failed on the slave (or was refused) with a POSIX errno. */
export class SlaveError extends Error {
  override name: string = 'SlaveError';
  readonly errnoName: ErrnoName;
  constructor(errnoName: ErrnoName, message: string, options?: { cause?: unknown }) {
    super(message, options);
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
