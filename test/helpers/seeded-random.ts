/**
 * A small seeded PRNG (mulberry32) for randomized tests: a failing run prints its seed, and the
 * same seed replays the same sequence.
 */
export class SeededRandom {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A seed from SPLITBRAIN_FUZZ_SEED when set, else a fresh one. */
  static seedFromEnv(): number {
    const given = process.env.SPLITBRAIN_FUZZ_SEED;
    if (given !== undefined && given !== '') return Number(given) >>> 0;
    return (Math.random() * 0x1_0000_0000) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  /** Mostly small, sometimes up to `max`: lengths spread over orders of magnitude. */
  size(max: number): number {
    return Math.min(max, Math.floor(2 ** (this.next() * Math.log2(max + 1))));
  }
}
