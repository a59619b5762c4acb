/**
 * Extended attributes: the only importer of @napi-rs/xattr (Node has no xattr calls). That
 * library reports a missing attribute, and some failures, as null rather than an error, and
 * other errors as "(os error N)" messages: both are turned into the errno a program expects.
 */
import { lstatSync } from 'node:fs';
import { getAttributeSync, listAttributesSync, removeAttributeSync, setAttributeSync } from '@napi-rs/xattr';
import { SlaveError, errnoName } from '../../protocol/index.js';
import type { HandlerTable } from '../context.js';

const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;

function osError(err: unknown, what: string): SlaveError {
  const message = (err as Error).message ?? String(err);
  const errno = /os error (\d+)/.exec(message);
  return new SlaveError(errno ? errnoName(Number(errno[1])) : 'EIO', `${what}: ${message}`, { cause: err });
}

function call<T>(what: string, work: () => T): T {
  try {
    return work();
  } catch (err) {
    throw osError(err, what);
  }
}

/** The attribute's value, or null when the file (which must exist) has no such attribute. */
function valueOf(host: string, name: string): Buffer | null {
  const value = call(`getxattr ${name}`, () => getAttributeSync(host, name));
  if (value === null) lstatSync(host); // a missing file is ENOENT, not "no such attribute"
  return value;
}

export const xattrOps: HandlerTable = {
  'fs.getxattr': async ({ path, name }, ctx) => {
    const value = valueOf(ctx.jail.resolve(path), name);
    if (value === null) throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
    return { value };
  },

  'fs.setxattr': async ({ path, name, value, flags }, ctx) => {
    const host = ctx.jail.resolve(path);
    if (flags & (XATTR_CREATE | XATTR_REPLACE)) {
      const exists = valueOf(host, name) !== null;
      if (flags & XATTR_CREATE && exists) throw new SlaveError('EEXIST', `attribute ${name} exists on ${path}`);
      if (flags & XATTR_REPLACE && !exists) throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
    }
    call(`setxattr ${name}`, () => setAttributeSync(host, name, value));
    return {};
  },

  'fs.listxattr': async ({ path }, ctx) => {
    const host = ctx.jail.resolve(path);
    return { names: call('listxattr', () => listAttributesSync(host)) };
  },

  'fs.removexattr': async ({ path, name }, ctx) => {
    const host = ctx.jail.resolve(path);
    if (valueOf(host, name) === null) throw new SlaveError('ENODATA', `no attribute ${name} on ${path}`);
    call(`removexattr ${name}`, () => removeAttributeSync(host, name));
    return {};
  },
};
