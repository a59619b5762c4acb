/**
 * Who an operation is for: the uid, gid and supplementary groups of the master process whose
 * system call it is (FUSE tells the mount), carried in the request envelope. A root agent acts
 * for that caller: what it creates belongs to the caller, and it refuses what the slave's kernel
 * would refuse the caller. The rules below are Linux's discretionary access rules, written once
 * and used by both ends: the agent checks against the slave's inodes and their POSIX ACLs, the
 * mount against the attributes it has cached (without ACLs) before it answers from its cache.
 */
import * as v from 'valibot';
import { S_IFDIR, S_IFMT, S_ISGID, S_ISVTX } from './attr.js';
import { u32 } from './schema.js';

/** NGROUPS_MAX on Linux. */
export const MAX_GROUPS = 65536;

export const callerSchema = v.object({ uid: u32, gid: u32, groups: v.pipe(v.array(u32), v.maxLength(MAX_GROUPS)) });

export type Caller = v.InferOutput<typeof callerSchema>;

export const ROOT_CALLER: Caller = Object.freeze({ uid: 0, gid: 0, groups: [] }) as Caller;

/** access(2)'s bits, and what the rules below ask for. */
export const MAY_READ = 4;
export const MAY_WRITE = 2;
export const MAY_EXEC = 1;


/** What the rules need of an inode. */
export interface Owned {
  mode: number;
  uid: number;
  gid: number;
}

export function isRoot(caller: Caller): boolean {
  return caller.uid === 0;
}

export function inGroup(caller: Caller, gid: number): boolean {
  return caller.gid === gid || caller.groups.includes(gid);
}

/**
 * Whether `caller` may access `inode` for all of `want` (MAY_* bits), as generic_permission
 * decides: one class of bits (owner, else group, else other) applies, never a union. Root may
 * read and write anything, and execute what has an execute bit for anyone (or is a directory).
 */
export function permits(caller: Caller, inode: Owned, want: number): boolean {
  if (want === 0) return true;
  if (isRoot(caller)) {
    if ((want & MAY_EXEC) === 0) return true;
    return (inode.mode & S_IFMT) === S_IFDIR || (inode.mode & 0o111) !== 0;
  }
  let bits: number;
  if (caller.uid === inode.uid) bits = (inode.mode >> 6) & 7;
  else if (inGroup(caller, inode.gid)) bits = (inode.mode >> 3) & 7;
  else bits = inode.mode & 7;
  return (bits & want) === want;
}

/** The kernel marks the opens of execve() with __FMODE_EXEC; FUSE passes it on. */
const FMODE_EXEC = 0o40;
const O_WRONLY = 1;
const O_RDWR = 2;
const O_TRUNC = 0o1000;

/** Whether a descriptor opened with `flags` can be read: O_RDONLY or O_RDWR (not O_WRONLY, nor 3, "for ioctl only"). */
export function readsWith(flags: number): boolean {
  const mode = flags & 3;
  return mode === 0 || mode === O_RDWR;
}

/** What open(2) with Linux's `flags` asks of the file's permission bits (may_open's acc_mode). */
export function openAccess(flags: number): number {
  const mode = flags & 3;
  // Access mode 3 is Linux's "for ioctl only": read and write permission, and neither allowed.
  let want = mode === O_WRONLY ? MAY_WRITE : mode === O_RDWR || mode === 3 ? MAY_READ | MAY_WRITE : MAY_READ;
  if (flags & O_TRUNC) want |= MAY_WRITE;
  if (flags & FMODE_EXEC) want |= MAY_EXEC;
  return want;
}

const ACL_USER = 0x02;
const ACL_GROUP_OBJ = 0x04;
const ACL_GROUP = 0x08;
const ACL_MASK = 0x10;
const ACL_OTHER = 0x20;

interface AclEntry { tag: number; perm: number; id: number }

/** `system.posix_acl_access` as Linux stores it: version 2, then (tag u16, perm u16, id u32) LE. */
function aclEntries(xattr: Uint8Array): AclEntry[] | undefined {
  if (xattr.length < 4 || (xattr.length - 4) % 8 !== 0) return undefined;
  const view = new DataView(xattr.buffer, xattr.byteOffset, xattr.byteLength);
  if (view.getUint32(0, true) !== 2) return undefined;
  const entries: AclEntry[] = [];
  for (let at = 4; at < xattr.length; at += 8) {
    entries.push({ tag: view.getUint16(at, true), perm: view.getUint16(at + 2, true), id: view.getUint32(at + 4, true) });
  }
  return entries;
}

/**
 * `permits` for an inode with a POSIX access ACL (posix_acl_permission): the owner by the owner
 * entry; a named user by its entry under the mask; the owning and named groups the caller is in
 * by any entry that grants it all, under the mask; anyone else by the other entry, unless one of
 * their groups was named. An unreadable ACL falls back to the mode bits.
 */
export function permitsWithAcl(caller: Caller, inode: Owned, acl: Uint8Array | null | undefined, want: number): boolean {
  const entries = acl ? aclEntries(acl) : undefined;
  // As acl_permission_check: the owner, and any inode whose group class (the ACL's mask) is
  // empty, by the mode bits.
  if (!entries || isRoot(caller) || caller.uid === inode.uid || want === 0 || (inode.mode & 0o070) === 0) {
    return permits(caller, inode, want);
  }
  const mask = entries.find((e) => e.tag === ACL_MASK)?.perm ?? 7;
  const masked = (perm: number) => (perm & mask & want) === want;
  const named = entries.find((e) => e.tag === ACL_USER && e.id === caller.uid);
  if (named) return masked(named.perm);
  let found = false;
  for (const e of entries) {
    const member = (e.tag === ACL_GROUP_OBJ && inGroup(caller, inode.gid)) || (e.tag === ACL_GROUP && inGroup(caller, e.id));
    if (!member) continue;
    found = true;
    if ((e.perm & want) === want) return masked(e.perm);
  }
  if (found) return false;
  const other = entries.find((e) => e.tag === ACL_OTHER);
  return other ? (other.perm & want) === want : permits(caller, inode, want);
}

/** chmod's rule: only the owner (or root). */
export function owns(caller: Caller, inode: Owned): boolean {
  return isRoot(caller) || caller.uid === inode.uid;
}

/**
 * The sticky-directory rule of unlink, rmdir and rename: in a directory with S_ISVTX only the
 * entry's owner, the directory's owner or root may remove or replace the entry.
 */
export function mayRemoveFrom(caller: Caller, dir: Owned, entry: Owned): boolean {
  if ((dir.mode & S_ISVTX) === 0 || isRoot(caller)) return true;
  return caller.uid === entry.uid || caller.uid === dir.uid;
}

/**
 * chown's rule (chown_ok, chgrp_ok): a non-root caller may give a file to nobody else, and may
 * change its group only if it owns the file and belongs to the new group. -1 keeps an id.
 */
export function mayChown(caller: Caller, inode: Owned, uid: number, gid: number): boolean {
  if (isRoot(caller)) return true;
  if (uid !== -1 && !(caller.uid === inode.uid && uid === inode.uid)) return false;
  if (gid !== -1 && !(caller.uid === inode.uid && (gid === inode.gid || inGroup(caller, gid)))) return false;
  return true;
}

/**
 * The mode chmod really sets: a non-root caller outside the file's group cannot set S_ISGID
 * (the kernel clears it silently rather than failing).
 */
export function chmodMode(caller: Caller, inode: Owned, mode: number): number {
  if (isRoot(caller) || (mode & S_ISGID) === 0 || inGroup(caller, inode.gid)) return mode;
  return mode & ~S_ISGID;
}

/**
 * The owner of an object the caller creates in `parent`: the caller's uid, and the directory's
 * group where the directory is set-group-ID (BSD semantics, as Linux gives such directories).
 */
export function newOwner(caller: Caller, parent: Owned): { uid: number; gid: number } {
  return { uid: caller.uid, gid: (parent.mode & S_ISGID) !== 0 ? parent.gid : caller.gid };
}
