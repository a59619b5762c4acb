/**
 * Extended attributes on Linux: the agent's only importer of @napi-rs/xattr (Node has no xattr
 * calls). That library reports a missing attribute, and some failures, as null rather than an
 * error, and other errors as "(os error N)" messages: both are turned into the errno a program
 * expects. It takes UTF-8 paths only: a file whose path is not UTF-8 is asked through libc with
 * its bytes (libc.ts). The library's own way to reach one, /proc/self/fd/N of a descriptor, named
 * the procfs link itself (its calls do not follow symlinks): every such file listed no
 * attributes and setting one was EPERM.
 */
import { lstatSync } from 'node:fs';
import { createRequire } from 'node:module';
import { SlaveError, errnoName, errnoOf, hasLoneSurrogates } from '../../../protocol/index.js';
import { cPath, fsPath, isLongPath } from '../../host-path.js';
import { libc, libcFailure, type Libc } from './libc.js';

type XattrLibrary = typeof import('@napi-rs/xattr');
let library: XattrLibrary | undefined;

/**
 * The native library, loaded at the first attribute a request needs: an idle agent, and one
 * whose masters never ask, does not map it (docs/performance.md, "Agent memory").
 */
function xattr(): XattrLibrary {
  library ??= createRequire(import.meta.url)('@napi-rs/xattr') as XattrLibrary;
  return library;
}

/**
 * libc for a path the library cannot take (not UTF-8, or too long to name at once: host-path.ts
 * names it through a directory's descriptor); undefined for one it can.
 */
function rawPath(host: string, what: string): Libc | undefined {
  if (!hasLoneSurrogates(host) && !isLongPath(host)) return undefined;
  const lib = libc();
  if (lib === null) throw new SlaveError('EOPNOTSUPP', `${what}: the path is not UTF-8 or too long, and libc is not loaded to name it by its bytes`);
  return lib;
}

/** A C string of an attribute's name. */
function cName(name: string): Buffer {
  return Buffer.from(`${name}\0`, 'utf8');
}

/**
 * Calls `get(buffer, size)` (an l*xattr(2) that fills a buffer) with a null buffer for the size,
 * then with one of that size; again if the value grew between the two (ERANGE). Null on ENODATA.
 */
function sized(lib: Libc, what: string, get: (buffer: Buffer | null, size: number) => number): Buffer | null {
  for (let tries = 0; ; tries++) {
    const size = get(null, 0);
    if (size < 0) {
      if (errnoName(lib.errno()) === 'ENODATA') return null;
      throw libcFailure(lib, what);
    }
    const buffer = Buffer.alloc(size);
    const got = size === 0 ? 0 : get(buffer, size);
    if (got >= 0) return buffer.subarray(0, got);
    if (errnoName(lib.errno()) !== 'ERANGE' || tries >= 3) throw libcFailure(lib, what);
  }
}

function osError(err: unknown, what: string): SlaveError {
  const message = (err as Error).message ?? String(err);
  const errno = /os error (\d+)/.exec(message);
  return new SlaveError(errno ? errnoName(Number(errno[1])) : 'EIO', `${what}: ${message}`, { cause: err });
}

function call<T>(what: string, work: () => T): T {
  try {
    return work();
  } catch (err) {
    if (errnoOf(err) !== undefined) throw err; // ours, or Node's (a name's bytes, its descriptor)
    throw osError(err, what);
  }
}

/** The attribute's value, or null where the library or libc says there is none. */
function valueOf(host: string, name: string, what: string): Buffer | null {
  const lib = rawPath(host, what);
  if (lib === undefined) return call(what, () => xattr().getAttributeSync(host, name));
  const path = cPath(host);
  const cname = cName(name);
  return sized(lib, what, (buffer, size) => lib.lgetxattr(path, cname, buffer, size));
}

export function accessAcl(host: string): Buffer | null {
  try {
    return valueOf(host, 'system.posix_acl_access', 'getxattr system.posix_acl_access');
  } catch {
    return null;
  }
}

export function getxattr(host: string, name: string): Buffer | null {
  const value = valueOf(host, name, `getxattr ${name}`);
  // The library answers null for a missing file too: that is ENOENT, not "no such attribute".
  if (value === null) lstatSync(fsPath(host));
  return value;
}

export function setxattr(host: string, name: string, value: Uint8Array): void {
  const what = `setxattr ${name}`;
  const lib = rawPath(host, what);
  if (lib === undefined) {
    call(what, () => xattr().setAttributeSync(host, name, value));
    return;
  }
  if (lib.lsetxattr(cPath(host), cName(name), value, value.length, 0) !== 0) throw libcFailure(lib, what);
}

export function listxattr(host: string): string[] {
  const lib = rawPath(host, 'listxattr');
  if (lib === undefined) return call('listxattr', () => xattr().listAttributesSync(host));
  const path = cPath(host);
  const names = sized(lib, 'listxattr', (buffer, size) => lib.llistxattr(path, buffer, size)) ?? Buffer.alloc(0);
  return names.toString('utf8').split('\0').filter((n) => n !== '');
}

/**
 * Whether `host` (not followed if a symlink) has any extended attribute; undefined when that
 * cannot be told (it is gone, or its filesystem has none). Asked at every create and for every
 * entry a listing returns (the replies' `bare`): one llistxattr(2) for the size the names would
 * take, where the library's listing makes two (the size, then the names) and builds the list.
 */
export function hasAnyXattr(host: string): boolean | undefined {
  const lib = libc();
  if (lib !== null) {
    const bytes = lib.llistxattr(cPath(host), null, 0);
    return bytes < 0 ? undefined : bytes > 0;
  }
  try {
    return listxattr(host).length > 0;
  } catch {
    return undefined;
  }
}

export function removexattr(host: string, name: string): void {
  const what = `removexattr ${name}`;
  const lib = rawPath(host, what);
  if (lib === undefined) {
    call(what, () => xattr().removeAttributeSync(host, name));
    return;
  }
  if (lib.lremovexattr(cPath(host), cName(name)) !== 0) throw libcFailure(lib, what);
}
