/**
 * File attributes as they cross the wire: a fixed-order array of numbers, because readdir
 * replies carry one per entry and field names would triple their size.
 */
import { msOfTimestamp, timestampFromMs, type Timestamp } from './file-times.js';

export interface Attr {
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  blocks: number;
  /** Integer milliseconds: `Math.floor(atimeMs / 1000)` is the exact second, also before 1970. */
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  rdev: number;
  blksize: number;
  /** The nanoseconds within the second of atimeMs (0 to 999,999,999). */
  atimeNsec: number;
  mtimeNsec: number;
  ctimeNsec: number;
}

/** The wire order. New fields are only ever appended: a peer reads the ones it knows. */
export const ATTR_FIELDS = [
  'mode', 'nlink', 'uid', 'gid', 'size', 'blocks',
  'atimeMs', 'mtimeMs', 'ctimeMs', 'ino', 'rdev', 'blksize',
  'atimeNsec', 'mtimeNsec', 'ctimeNsec',
] as const satisfies readonly (keyof Attr)[];

/**
 * Fields of protocol 1, whose peers send and take exactly these (times then as float ms): an
 * agent answering such a master sends only these (protocol/wire-forms.ts).
 */
export const ATTR_FIELDS_V1 = 12;

export type WireAttr = number[];

export function attrToWire(attr: Attr): WireAttr {
  return ATTR_FIELDS.map((field) => attr[field]);
}

const TIMES = [['atimeMs', 'atimeNsec'], ['mtimeMs', 'mtimeNsec'], ['ctimeMs', 'ctimeNsec']] as const;

export function attrFromWire(wire: WireAttr): Attr {
  const attr = {} as Attr;
  ATTR_FIELDS.forEach((field, i) => {
    attr[field] = wire[i] ?? 0;
  });
  if (wire.length < ATTR_FIELDS.length) {
    // An older agent's attributes: only (float) milliseconds, the nanoseconds are derived.
    for (const [ms, nsec] of TIMES) {
      const time = timestampFromMs(attr[ms]);
      attr[ms] = msOfTimestamp(time);
      attr[nsec] = time.nsec;
    }
  }
  return attr;
}

/** Sets one of `attr`'s times, both its milliseconds and its nanoseconds. */
export function setAttrTime(attr: Attr, which: 'atime' | 'mtime' | 'ctime', time: Timestamp): void {
  attr[`${which}Ms`] = msOfTimestamp(time);
  attr[`${which}Nsec`] = time.nsec;
}

/** Whether the nanosecond fields of a wire array, where it has them, are in their range. */
export function wireAttrTimesValid(wire: WireAttr): boolean {
  for (let i = ATTR_FIELDS_V1; i < Math.min(wire.length, ATTR_FIELDS.length); i++) {
    const nsec = wire[i] as number;
    if (!Number.isInteger(nsec) || nsec < 0 || nsec > 999_999_999) return false;
  }
  return true;
}

/** File type bits, as in <sys/stat.h>; kept here so the protocol stays free of I/O modules. */
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFSOCK = 0o140000;
/** Mode bits chown(2) may clear. */
export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;
export const S_IXGRP = 0o0010;
export const S_ISVTX = 0o1000;

export function isDir(attr: Attr): boolean {
  return (attr.mode & S_IFMT) === S_IFDIR;
}
