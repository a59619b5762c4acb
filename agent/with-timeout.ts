/**
 * A wait with a bound: the agent waits for its own work (a watcher's answer, closes and commits
 * before a spawn), and a filesystem or helper that hangs must not hold a request up for ever.
 */

/** `promise`'s value, or undefined once `ms` have passed without one; the timer goes either way. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms); })])
    .finally(() => clearTimeout(timer));
}
