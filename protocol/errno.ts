/**
 * The one place where POSIX errno names and numbers meet.
 *
 * Errors cross the wire as names ('ENOENT'), because numbers differ between platforms. Signs:
 * os.constants.errno is positive, Node's `err.errno` is negative (libuv), and our FUSE binding's
 * replyErr takes the positive number (libfuse's fuse_reply_err). Anything we cannot name becomes EIO.
 */
import { constants } from 'node:os';

const byName: Readonly<Record<string, number>> = constants.errno;
const byNumber = new Map<number, string>();
for (const [name, num] of Object.entries(byName)) {
  // Aliases (EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK): keep the first, canonical name.
  if (!byNumber.has(num)) byNumber.set(num, name);
}

export type ErrnoName = string;

/** True when `name` is an errno this platform knows. */
export function isErrnoName(name: unknown): name is ErrnoName {
  return typeof name === 'string' && Object.hasOwn(byName, name);
}

/** Positive errno number for a name; EIO's number for a name we do not know. */
export function errnoNumber(name: string): number {
  return byName[name] ?? byName.EIO;
}

/** Name for a positive or negative errno number; 'EIO' when unknown. */
export function errnoName(num: number): ErrnoName {
  return byNumber.get(Math.abs(num)) ?? 'EIO';
}

/**
 * The errno name carried by a thrown value: Node system errors carry `code` ('ENOENT'); our own
 * errors carry `errno` as a name. Returns undefined when the value carries none, so the caller
 * can log the original before answering EIO.
 */
export function errnoOf(err: unknown): ErrnoName | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { code, errnoName: named } = err as { code?: unknown; errnoName?: unknown };
  if (isErrnoName(named)) return named;
  if (isErrnoName(code)) return code;
  return undefined;
}
