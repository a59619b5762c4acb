/**
 * The slave's attributes as the protocol's. Stats are read as bigints: a file time in
 * nanoseconds since the epoch needs 61 bits, more than a double holds exactly.
 */
import type { BigIntStats } from 'node:fs';
import { attrToWire, msOfTimestamp, timestampFromNs, type WireAttr } from '../../protocol/index.js';
import type { FilesBackend } from '../backends/files-backend.js';

export function statToWire(st: BigIntStats): WireAttr {
  const atime = timestampFromNs(st.atimeNs);
  const mtime = timestampFromNs(st.mtimeNs);
  const ctime = timestampFromNs(st.ctimeNs);
  return attrToWire({
    mode: Number(st.mode),
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    blocks: Number(st.blocks),
    atimeMs: msOfTimestamp(atime),
    mtimeMs: msOfTimestamp(mtime),
    ctimeMs: msOfTimestamp(ctime),
    ino: Number(st.ino),
    rdev: Number(st.rdev),
    blksize: Number(st.blksize),
    atimeNsec: atime.nsec,
    mtimeNsec: mtime.nsec,
    ctimeNsec: ctime.nsec,
  });
}

/** lstat(2) as the protocol's attributes. */
export function lstatWire(files: FilesBackend, host: string): WireAttr {
  return statToWire(files.lstat(host, { bigint: true }));
}

/**
 * What a request that made `host` (a new name: create, mkdir, symlink, link) answers: its
 * attributes, and `bare` when it has no extended attribute at all, so the master answers the
 * probes `ls -l` and the kernel make of it (ACLs, security labels) without asking.
 */
export function madeReply(files: FilesBackend, host: string): { attr: WireAttr; bare?: true } {
  return { attr: lstatWire(files, host), ...bareOf(files, host) };
}

/** `bare` when `host` has no extended attribute at all (see madeReply). */
export function bareOf(files: FilesBackend, host: string): { bare?: true } {
  return files.hasXattrs(host) === false ? { bare: true } : {};
}

/** fstat(2) as the protocol's attributes. */
export function fstatWire(files: FilesBackend, fd: number): WireAttr {
  return statToWire(files.fstat(fd, { bigint: true }));
}
