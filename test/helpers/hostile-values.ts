/**
 * Hostile values for the agent fuzz test (test/integration/hostile-input.test.ts): paths that
 * try to leave the export root, numbers at the edges of their types, arbitrary msgpack values,
 * and raw msgpack whose headers promise more than the message holds.
 */
import { Encoder } from '@msgpack/msgpack';
import type { SeededRandom } from './seeded-random.js';

const encoder = new Encoder();

export function pack(value: unknown): Uint8Array {
  return encoder.encode(value);
}

/**
 * Names the export root is prepared with (hostile-input.test.ts): files, and symlinks that lead
 * out of the root if anything follows them on the host (`abs-out` -> <tmp>/outside, `rel-out`
 * -> ../outside, `tmp-link` -> <tmp>, `up` -> .., `hop1` -> hop2 -> rel-out, `canary-link` ->
 * ../outside/canary, `loop` -> loop).
 */
export const ROOT_NAMES = ['file', 'dir', 'sub', 'abs-out', 'rel-out', 'tmp-link', 'up', 'hop1', 'hop2', 'canary-link', 'loop'];
/** The file outside the root whose content, attributes and directory must never change. */
export const CANARY = 'canary';
export const CANARY_CONTENT = 'outside the root: never to be read or changed\n';

const NAMES = [
  ...ROOT_NAMES, 'a', 'b', 'c', 'new', '..', '.', '...', 'outside', CANARY, ' ', '-', 'é', '\u202e', '%s%n',
  'x'.repeat(255), 'x'.repeat(256),
];

/** Slave paths: mostly plausible, with `..`, symlink escapes, NUL, and lengths around the limits. */
export function hostilePath(rng: SeededRandom): string {
  switch (rng.int(12)) {
    case 0: return rng.pick(['/../outside/canary', '/abs-out/canary', '/rel-out/canary', '/tmp-link/outside/canary',
      '/up/outside/canary', '/hop1/canary', '/canary-link', '/sub/../../outside/canary', '/up/up/up/etc/passwd',
      '/loop/x', '/abs-out', '/tmp-link', '/..', '/../..', '/']);
    case 1: return `/${'a/'.repeat(rng.int(2100))}a`; // around PATH_MAX, under the 4096 limit or over it
    case 2: return `/${'x'.repeat(4090 + rng.int(10))}`; // a component far over NAME_MAX
    case 3: return `/${rng.pick(NAMES)}\0${rng.pick(NAMES)}`; // NUL: never a host path
    case 4: return rng.pick(['', 'relative', 'a/b', '.', '..', '\0']); // not starting with '/'
    case 5: return `/${'../'.repeat(rng.int(50))}${rng.pick(NAMES)}`;
    case 6: return `${'/'.repeat(1 + rng.int(5))}${rng.pick(NAMES)}${'/'.repeat(rng.int(3))}`;
    case 7: return `/${randomString(rng, rng.size(300))}`;
    default: {
      const depth = 1 + rng.int(5);
      return `/${Array.from({ length: depth }, () => rng.pick(NAMES)).join('/')}`;
    }
  }
}

/** Device paths: as above, and names the default --dev-allow globs match with `..` after them. */
export function hostileDevicePath(rng: SeededRandom): string {
  if (rng.chance(0.5)) return hostilePath(rng);
  const allowed = rng.pick(['tty0', 'ttyS0', 'pts/0', 'pts', 'null', 'zero', 'urandom', 'random', 'tty']);
  return `/${allowed}${rng.pick(['', '/..', '/../..', '/../../outside/canary', '/../null', '/.'])}`;
}

export function randomString(rng: SeededRandom, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) {
    s += rng.chance(0.9) ? String.fromCharCode(32 + rng.int(95)) : String.fromCodePoint(rng.int(0x2ffff));
  }
  return s;
}

/** Integers where types end: 0, ±1, 2^31, 2^32, 2^53, and beyond (these encode as float64). */
export function edgeInteger(rng: SeededRandom): number {
  return rng.pick([
    0, 1, -1, 2, 255, 4096, 0x7fffffff, 0x80000000, 0xffffffff, 0x1_0000_0000, 2 ** 40, 2 ** 52,
    Number.MAX_SAFE_INTEGER - 4096, Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER + 1, 2 ** 63, 2 ** 64, -(2 ** 31), -(2 ** 53), rng.int(0x1_0000_0000),
  ]);
}

/** Any msgpack value: what a hostile peer puts where a field of some type belongs. */
export function randomValue(rng: SeededRandom, depth = 3): unknown {
  switch (rng.int(depth > 0 ? 12 : 9)) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return edgeInteger(rng);
    case 3: return rng.pick([0.5, -1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e308, -0]);
    case 4: return randomString(rng, rng.size(64));
    case 5: return rng.bytes(rng.size(64));
    case 6: return rng.pick(['now', 'omit', 'SIGKILL', '/', 'x'.repeat(5000)]);
    case 7: return hostilePath(rng);
    case 8: return rng.int(64);
    case 9: return Array.from({ length: rng.size(8) }, () => randomValue(rng, depth - 1));
    case 10: return randomObject(rng, depth - 1);
    default: {
      // An own property named __proto__: msgpack maps may carry it; decoding must refuse it.
      const o: Record<string, unknown> = {};
      Object.defineProperty(o, rng.pick(['__proto__', 'constructor', 'prototype']), { value: randomValue(rng, 0), enumerable: true });
      return o;
    }
  }
}

function randomObject(rng: SeededRandom, depth: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const keys = ['v', 'id', 'hb', 'a', 'path', 'fh', 'offset', 'length', 'data', 'mode', 'flags', 'cursor', 'x'];
  for (let i = rng.size(6); i > 0; i--) o[rng.pick(keys)] = randomValue(rng, depth);
  return o;
}

/**
 * Raw msgpack whose header declares far more than follows: strings, binaries, arrays, maps and
 * extensions of up to 4 G, with a few bytes of data. Decoding must fail without allocating it.
 */
export function hugeHeader(rng: SeededRandom): Uint8Array {
  const n32 = rng.pick([0xffffffff, 0x7fffffff, 1 << 20, (1 << 20) + 1, 1 << 24, 65]);
  const head = rng.pick([
    [0xdb, ...u32(n32)], [0xc6, ...u32(n32)], [0xdd, ...u32(n32)], [0xdf, ...u32(n32)], [0xc9, ...u32(n32), 1],
    [0xda, 0xff, 0xff], [0xc5, 0xff, 0xff], [0xdc, 0xff, 0xff], [0xde, 0xff, 0xff], [0xc8, 0xff, 0xff, 1],
    [0xd9, 0xff], [0xc4, 0xff], [0xc7, 0xff, 0xff], [0xd4, 0xff], [0xd8, 0x05],
    [0xc1], // never used in msgpack
  ]);
  return Uint8Array.from([...head, ...rng.bytes(rng.int(8))]);
}

/** Arrays or maps nested `depth` deep, built as bytes (an encoder would recurse). */
export function deepNesting(depth: number, kind: 'array' | 'map'): Uint8Array {
  const unit = kind === 'array' ? [0x91] : [0x81, 0xa1, 0x78]; // [ ... ] or { x: ... }
  const out = new Uint8Array(depth * unit.length + 1);
  for (let i = 0; i < depth; i++) out.set(unit, i * unit.length);
  out[out.length - 1] = 0xc0; // nil, innermost
  return out;
}

/** A msgpack map of pre-encoded values, so any field can hold raw, hostile bytes. */
export function rawMap(entries: [string, Uint8Array][]): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.from([0x80 | entries.length])];
  for (const [key, value] of entries) parts.push(pack(key), value);
  return Buffer.concat(parts);
}

function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}
