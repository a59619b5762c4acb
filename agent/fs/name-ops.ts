/** Ops that add, remove or rename names. None follows a symlink in last place. */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { chmodSync, closeSync, linkSync, lstatSync, openSync, renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { promisify } from 'node:util';
import { S_IFBLK, S_IFCHR, S_IFIFO, S_IFMT, S_IFREG, SlaveError } from '../../protocol/index.js';
import type { HandlerTable } from '../context.js';
import { statToWire } from './stat-attr.js';

const run = promisify(execFile);

/**
 * EEXIST when `path` exists; its own errno when it cannot be looked up (ENAMETOOLONG, ENOTDIR,
 * ELOOP), which the tools below would only report as text.
 */
function mustNotExist(path: string): void {
  try {
    lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  throw new SlaveError('EEXIST', `file exists: ${path}`);
}

/**
 * Node has no mkfifo(2) or mknod(2), so special files are made by coreutils, which every slave
 * has; existence is checked first so the caller gets EEXIST rather than a tool's message.
 */
async function makeSpecial(host: string, mode: number, rdev: number): Promise<void> {
  mustNotExist(host);
  const type = mode & S_IFMT;
  const major = Math.floor(rdev / 256) & 0xfff; // glibc's dev_t layout, as the kernel passes it
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  const [command, argv] = type === S_IFIFO
    ? ['mkfifo', [host]]
    : ['mknod', [host, type === S_IFCHR ? 'c' : 'b', String(major), String(minor)]];
  try {
    await run(command, argv);
  } catch (cause) {
    const message = String((cause as { stderr?: string }).stderr ?? cause).trim();
    const errno = /Permission denied/.test(message) ? 'EACCES'
      : /Operation not permitted/.test(message) ? 'EPERM'
        : /No such file/.test(message) ? 'ENOENT' : 'EIO';
    throw new SlaveError(errno, message, { cause });
  }
}

export const nameOps: HandlerTable = {
  'fs.unlink': async ({ path }, ctx) => {
    unlinkSync(ctx.jail.resolve(path));
    return {};
  },

  'fs.rename': async ({ from, to }, ctx) => {
    renameSync(ctx.jail.resolve(from), ctx.jail.resolve(to));
    return {};
  },

  'fs.link': async ({ existing, path }, ctx) => {
    const host = ctx.jail.resolve(path);
    linkSync(ctx.jail.resolve(existing), host);
    return { attr: statToWire(lstatSync(host)) };
  },

  'fs.symlink': async ({ target, path }, ctx) => {
    const host = ctx.jail.resolve(path);
    symlinkSync(target, host);
    return { attr: statToWire(lstatSync(host)) };
  },

  'fs.mknod': async ({ path, mode, rdev }, ctx) => {
    const host = ctx.jail.resolve(path);
    const type = mode & S_IFMT;
    if (type === S_IFREG || type === 0) {
      const { O_CREAT, O_EXCL, O_WRONLY, O_NOFOLLOW } = constants;
      closeSync(openSync(host, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, mode & 0o7777));
    } else if (type === S_IFIFO || type === S_IFCHR || type === S_IFBLK) {
      await makeSpecial(host, mode, rdev);
      chmodSync(host, mode & 0o7777);
    } else {
      throw new SlaveError('EOPNOTSUPP', `cannot create a file of type ${type.toString(8)} remotely`);
    }
    return { attr: statToWire(lstatSync(host)) };
  },
};
