/**
 * File names are bytes on the slave; in our JavaScript they are strings. A name that is not
 * UTF-8 (b'\xff') is held in Python's *surrogateescape* form: each byte of an invalid sequence
 * (0x80 to 0xFF) becomes the lone surrogate U+DC00 + byte (U+DC80 to U+DCFF), so that it survives
 * being a string and turns back into the same bytes. Valid UTF-8 decodes as usual.
 *
 * Such strings cannot travel as msgpack str (UTF-8, which has no lone surrogates): the codec
 * sends them as bin and the schemas turn bin back into this form (protocol/wire-forms.ts).
 */
import { SlaveError } from './errors.js';

/** The longest name, in bytes, a Linux filesystem takes (NAME_MAX of <linux/limits.h>). */
export const NAME_MAX = 255;
/** PATH_MAX of <linux/limits.h>, which counts its NUL too: the longest path one system call takes. */
export const PATH_MAX = 4096;
/**
 * The longest path a request names. A tree may be deeper than one system call can name: an agent
 * whose hello lists LONG_PATHS_CAPABILITY names such paths itself (agent/host-path.ts); to an
 * older one the mount sends PATH_MAX at most.
 */
export const LONG_PATH_MAX = 32768;

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A lone surrogate (not half of a pair): the string is not plain Unicode. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether `name` holds escaped bytes (or other lone surrogates): it cannot be a msgpack str. */
export function hasLoneSurrogates(name: string): boolean {
  return LONE_SURROGATE.test(name);
}

/** Length of the well-formed UTF-8 sequence starting at `at`, or 0 (RFC 3629, as Python decodes). */
function sequenceLength(bytes: Uint8Array, at: number): number {
  const lead = bytes[at] as number;
  if (lead < 0x80) return 1;
  const cont = (i: number, low = 0x80, high = 0xbf) => {
    const b = bytes[at + i];
    return b !== undefined && b >= low && b <= high;
  };
  if (lead >= 0xc2 && lead <= 0xdf) return cont(1) ? 2 : 0;
  if (lead === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0; // no overlong forms
  if (lead === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // no encoded surrogates
  if (lead >= 0xe1 && lead <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (lead === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (lead >= 0xf1 && lead <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (lead === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0; // up to U+10FFFF
  return 0;
}

/** A name's bytes as our string: UTF-8 decoded, every other byte escaped (U+DC80 to U+DCFF). */
export function nameFromBytes(bytes: Uint8Array): string {
  try {
    return strict.decode(bytes);
  } catch {
    // not UTF-8: decoded sequence by sequence below
  }
  let name = '';
  let plainFrom = 0;
  for (let at = 0; at < bytes.length;) {
    const length = sequenceLength(bytes, at);
    if (length > 0) {
      at += length;
      continue;
    }
    name += strict.decode(bytes.subarray(plainFrom, at)) + String.fromCharCode(0xdc00 + (bytes[at] as number));
    at += 1;
    plainFrom = at;
  }
  return name + strict.decode(bytes.subarray(plainFrom));
}

/**
 * A name's bytes, as the slave's kernel takes them: the inverse of nameFromBytes. A lone
 * surrogate outside U+DC80 to U+DCFF stands for no byte: EILSEQ, as Python's surrogateescape
 * refuses it. (Escapes that spell valid UTF-8, '\udcc3\udca9', give the bytes of 'é', as in
 * Python: nameFromBytes never makes such a string.)
 */
export function nameToBytes(name: string): Buffer {
  if (!hasLoneSurrogates(name)) return Buffer.from(name, 'utf8');
  const parts: Buffer[] = [];
  let plainFrom = 0;
  for (let i = 0; i < name.length; i++) {
    const unit = name.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = name.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i += 1; // a pair: one character, encoded with the plain text around it
        continue;
      }
    } else if (unit < 0xdc00 || unit > 0xdfff) {
      continue;
    }
    if (unit < 0xdc80 || unit > 0xdcff) {
      throw new SlaveError('EILSEQ', `name has a lone surrogate U+${unit.toString(16).toUpperCase()} that stands for no byte`);
    }
    parts.push(Buffer.from(name.slice(plainFrom, i), 'utf8'), Buffer.of(unit - 0xdc00));
    plainFrom = i + 1;
  }
  parts.push(Buffer.from(name.slice(plainFrom), 'utf8'));
  return Buffer.concat(parts);
}

/**
 * The name as a well-formed string for a peer that only takes UTF-8 (protocol 1): each escaped
 * byte becomes U+FFFD, as Node's own UTF-8 decoding of such a name did before names were bytes.
 */
export function nameAsUnicode(name: string): string {
  return hasLoneSurrogates(name) ? name.replace(new RegExp(LONE_SURROGATE, 'g'), '\uFFFD') : name;
}
