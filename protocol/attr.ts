/**
 * File attributes as they cross the wire: a fixed-order array of numbers, because readdir
 * replies carry one per entry and field names would triple their size.
 */
export interface Attr {
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  blocks: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  rdev: number;
  blksize: number;
}

export const ATTR_FIELDS = [
  'mode', 'nlink', 'uid', 'gid', 'size', 'blocks',
  'atimeMs', 'mtimeMs', 'ctimeMs', 'ino', 'rdev', 'blksize',
] as const satisfies readonly (keyof Attr)[];

export type WireAttr = number[];

export function attrToWire(attr: Attr): WireAttr {
  return ATTR_FIELDS.map((field) => attr[field]);
}

export function attrFromWire(wire: WireAttr): Attr {
  const attr = {} as Attr;
  ATTR_FIELDS.forEach((field, i) => {
    attr[field] = wire[i] ?? 0;
  });
  return attr;
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
