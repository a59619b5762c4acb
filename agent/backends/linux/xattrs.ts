/**
 * Extended attributes on Linux: the agent's only importer of @napi-rs/xattr (Node has no xattr
 * calls). That library reports a missing attribute, and some failures, as null rather than an
 * error, and other errors as "(os error N)" messages: both are turned into the errno a program
 * expects.
 */
import { closeSync, constants, lstatSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { SlaveError, errnoName, errnoOf, hasLoneSurrogates, nameToBytes } from '../../../protocol/index.js';
import { fsPath } from '../../host-path.js';

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

/** open(2)'s O_PATH on Linux (Node does not export it): a handle to name a file by, not to read. */
const O_PATH = 0o10000000;

/**
 * Runs `work` with a path the xattr library can take: it takes UTF-8 strings only, so a name
 * that is not UTF-8 is reached through a descriptor of it, as /proc/self/fd/N.
 */
function withXattrPath<T>(host: string, work: (path: string) => T): T {
  if (!hasLoneSurrogates(host)) return work(host);
  const fd = openSync(nameToBytes(host), O_PATH | constants.O_NOFOLLOW);
  try {
    return work(`/proc/self/fd/${fd}`);
  } finally {
    closeSync(fd);
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

export function accessAcl(host: string): Buffer | null {
  try {
    return withXattrPath(host, (p) => xattr().getAttributeSync(p, 'system.posix_acl_access'));
  } catch {
    return null;
  }
}

export function getxattr(host: string, name: string): Buffer | null {
  const value = call(`getxattr ${name}`, () => withXattrPath(host, (p) => xattr().getAttributeSync(p, name)));
  if (value === null) lstatSync(fsPath(host)); // a missing file is ENOENT, not "no such attribute"
  return value;
}

export function setxattr(host: string, name: string, value: Uint8Array): void {
  call(`setxattr ${name}`, () => withXattrPath(host, (p) => xattr().setAttributeSync(p, name, value)));
}

export function listxattr(host: string): string[] {
  return call('listxattr', () => withXattrPath(host, (p) => xattr().listAttributesSync(p)));
}

export function removexattr(host: string, name: string): void {
  call(`removexattr ${name}`, () => withXattrPath(host, (p) => xattr().removeAttributeSync(p, name)));
}
