/**
 * File times as the slave's kernel keeps them: whole seconds since the epoch (negative before
 * 1970) and nanoseconds within that second. A double cannot hold both at once (a 2024 time in
 * nanoseconds needs 61 bits), so times cross the wire as the pair, and as integer milliseconds
 * beside it for code that only wants a rough time.
 */
export interface Timestamp {
  sec: number;
  /** 0 to 999,999,999, always counted forward from `sec` (also before 1970). */
  nsec: number;
}

export const NSEC_PER_SEC = 1_000_000_000;
const NS_PER_SEC = 1_000_000_000n;

/** A time in milliseconds (older peers: a float, maybe with microseconds) as seconds and nanoseconds. */
export function timestampFromMs(ms: number): Timestamp {
  let sec = Math.floor(ms / 1000);
  let nsec = Math.round((ms - sec * 1000) * 1e6);
  if (nsec >= NSEC_PER_SEC) { // rounding reached the next second
    sec += 1;
    nsec -= NSEC_PER_SEC;
  }
  return { sec, nsec };
}

/** Integer milliseconds whose floor division by 1000 is the exact second, before 1970 too. */
export function msOfTimestamp(time: Timestamp): number {
  return time.sec * 1000 + Math.floor(time.nsec / 1e6);
}

/** Nanoseconds since the epoch (Node's bigint stat: `mtimeNs`) as seconds and nanoseconds. */
export function timestampFromNs(ns: bigint): Timestamp {
  let sec = ns / NS_PER_SEC; // truncates toward zero: moved to the floor below
  let nsec = ns % NS_PER_SEC;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += NS_PER_SEC;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

/** A time given as milliseconds (protocol 1) or as seconds and nanoseconds, as the latter. */
export function timestampOf(time: number | Timestamp): Timestamp {
  return typeof time === 'number' ? timestampFromMs(time) : time;
}
