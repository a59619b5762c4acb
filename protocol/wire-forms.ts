/**
 * What a message's fields look like on the wire for a given protocol version, going out. The
 * schemas in ops.ts read every form back, so this file is the only place that knows them.
 *
 * Protocol 2 (nanosecond times, byte names):
 *  - a name, path or link target holding escaped bytes (protocol/name-bytes.ts) travels as
 *    msgpack bin, its exact bytes; any other as str, as before;
 *  - attributes have ATTR_FIELDS (with the nanoseconds), times may be `{ sec, nsec }`.
 * Protocol 1 (older masters and agents): attributes of ATTR_FIELDS_V1, times in milliseconds,
 * names as UTF-8 str. A reply to a protocol-1 request is sent in that form (escaped bytes become
 * U+FFFD, as such names always reached those masters); a request that cannot be put in it (a
 * name that is not UTF-8) fails with EILSEQ before it is sent.
 */
import { ATTR_FIELDS_V1, type WireAttr } from './attr.js';
import type { ChangeKind, SlaveChangeTuple } from './changes.js';
import { SlaveError } from './errors.js';
import type { Timestamp } from './file-times.js';
import { hasLoneSurrogates, nameAsUnicode, nameToBytes } from './name-bytes.js';

/** The first version with nanosecond times and byte names. */
export const BYTE_NAMES_VERSION = 2;

/** Fields of requests and replies that hold slave names, paths or link targets. */
const NAME_FIELDS = ['path', 'from', 'to', 'existing', 'target', 'cwd'] as const;
const TIME_FIELDS = ['atime', 'mtime'] as const;

type Direction = 'request' | 'reply';

function nameForm(name: string, version: number, direction: Direction): string | Uint8Array {
  if (!hasLoneSurrogates(name)) return name;
  if (version >= BYTE_NAMES_VERSION) return nameToBytes(name);
  if (direction === 'reply') return nameAsUnicode(name);
  throw new SlaveError('EILSEQ', 'the agent speaks protocol 1, which cannot carry a file name that is not UTF-8');
}

function msOfTimestampFloat(time: Timestamp): number {
  return time.sec * 1000 + time.nsec / 1e6;
}

function attrForm(attr: WireAttr, version: number): WireAttr {
  return version >= BYTE_NAMES_VERSION ? attr : attr.slice(0, ATTR_FIELDS_V1);
}

/**
 * `body` (an op's arguments or result) as it goes on the wire to a peer of `version`. Returns
 * `body` itself when nothing changes (the common case: no escaped name, protocol 2).
 */
export function outgoingForm(body: object, version: number, direction: Direction): object {
  const fields = body as Record<string, unknown>;
  let out: Record<string, unknown> | undefined;
  const set = (key: string, value: unknown) => {
    out ??= { ...fields };
    out[key] = value;
  };
  for (const key of NAME_FIELDS) {
    const value = fields[key];
    if (typeof value === 'string' && hasLoneSurrogates(value)) set(key, nameForm(value, version, direction));
  }
  const entries = fields.entries;
  if (Array.isArray(entries) && (version < BYTE_NAMES_VERSION || entries.some((e) => hasLoneSurrogates((e as [string])[0])))) {
    const formed = (entries as [string, WireAttr | null][]).map(([name, attr]) =>
      [nameForm(name, version, direction), attr && attrForm(attr, version)]);
    set('entries', formed);
  }
  if (version < BYTE_NAMES_VERSION) {
    if (Array.isArray(fields.attr)) set('attr', attrForm(fields.attr as WireAttr, version));
    for (const key of TIME_FIELDS) {
      const value = fields[key];
      // Float milliseconds, as protocol 1 had them: its agents keep the microseconds.
      if (typeof value === 'object' && value !== null) set(key, msOfTimestampFloat(value as Timestamp));
    }
  }
  return out ?? body;
}

/**
 * A change feed message's changes as they go on the wire (protocol/changes.ts): a dir or name
 * holding escaped bytes as bin, as in protocol 2 replies. The feed is published to every master
 * at once, so there is no older form: a protocol-1 master cannot decode such a message and
 * counts it as lost changes (it forgets what it cached), never as a wrong name.
 */
export function changesOutgoingForm(changes: SlaveChangeTuple[]): (SlaveChangeTuple | [string | Uint8Array, string | Uint8Array | null, ChangeKind])[] {
  if (!changes.some(([dir, name]) => hasLoneSurrogates(dir) || (name !== null && hasLoneSurrogates(name)))) return changes;
  const bin = (s: string) => (hasLoneSurrogates(s) ? nameToBytes(s) : s);
  return changes.map(([dir, name, kind]) => [bin(dir), name === null ? null : bin(name), kind]);
}
