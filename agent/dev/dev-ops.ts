/**
 * Device ops: the slave's --dev-root as a tree of files. Directories and symlinks are as on the
 * slave; character and block devices are presented as regular files of size 0 with their
 * permissions (never as device nodes: on the master those numbers would be the master's own
 * devices). Opening one needs --dev-allow; it is then read and written as a stream.
 */
import { posix } from 'node:path';
import { constants, lstatSync, openSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import { SlaveError, S_IFREG, openAccess, shownSymlinkTarget, type ReaddirEntry, type WireAttr } from '../../protocol/index.js';
import type { AgentContext, HandlerTable } from '../context.js';
import type { RootJail } from '../root-jail.js';
import { statToWire } from '../fs/stat-attr.js';

const { O_NONBLOCK, O_NOCTTY, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NOFOLLOW } = constants;

/** The attributes the master sees: devices become size-0 regular files. */
function presented(st: BigIntStats): WireAttr {
  const wire = statToWire(st);
  if (st.isCharacterDevice() || st.isBlockDevice()) {
    wire[0] = S_IFREG | (Number(st.mode) & 0o7777); // mode
    wire[4] = 0; // size
    wire[5] = 0; // blocks
    wire[10] = 0; // rdev
  }
  return wire;
}

/**
 * A device link's target as a path in the device tree. A link to another device by absolute path
 * (udev's /dev/serial/by-id/... are relative, a board's /dev/ttyBOARD -> /dev/pts/3 is not) must
 * lead to the slave's device, not to the master's own /dev/pts/3: the slave's /dev (or the
 * --dev-root it names) is the device tree's root. Any other absolute target is taken inside the
 * device tree too, and the master's mount stops `..` at its root (protocol/symlink-target.ts), so
 * no link leads to the master's files, as /dev/core -> /proc/kcore or /dev/log ->
 * /run/systemd/journal/dev-log did when shown as they are. Not even /dev/fd -> /proc/self/fd: on
 * the master that is the test's own descriptors, and a root test opening a link to
 * /proc/self/fd/N for writing would write a master file it had open for reading. Such links lead
 * nowhere on the device mount (ENOENT).
 */
function deviceTreeTarget(target: string, devRoot: string): string {
  if (devRoot !== '/') {
    for (const prefix of [devRoot, '/dev']) {
      if (target === prefix || target.startsWith(`${prefix}/`)) return target.slice(prefix.length) || '/';
    }
  }
  return target;
}

function devJail(ctx: AgentContext): RootJail {
  if (!ctx.devJail) throw new SlaveError('ENODEV', 'this agent serves no devices (its --dev-root is not a directory)');
  return ctx.devJail;
}

export const devOps: HandlerTable = {
  'dev.getattr': async ({ path }, ctx) => ({ attr: presented(lstatSync(devJail(ctx).resolve(path), { bigint: true })) }),

  'dev.readdir': async ({ path }, ctx) => {
    const dir = devJail(ctx).resolve(path, true);
    const entries: ReaddirEntry[] = readdirSync(dir).map((name) => {
      try {
        return [name, presented(lstatSync(`${dir}/${name}`, { bigint: true }))];
      } catch {
        return [name, null]; // gone meanwhile (a pts closed)
      }
    });
    return { entries };
  },

  'dev.readlink': async ({ path, inTree }, ctx) => {
    const jail = devJail(ctx);
    const target = deviceTreeTarget(readlinkSync(jail.resolve(path)), jail.root);
    // A master that does not ask for the tree's path shows what it gets: relative, inside.
    return { target: inTree === true ? target : shownSymlinkTarget(path, target) };
  },

  'dev.open': async ({ path, flags }, ctx, caller) => {
    // The policy judges the path as it resolves: unnormalised, '/pts/..' matched 'pts/*' and
    // opened the dev root itself (found by test/integration/hostile-input.test.ts).
    const relative = posix.normalize(`/${path}`).replace(/^\/+/, '');
    if (!ctx.devAllow(relative)) {
      throw new SlaveError('EACCES', `${path}: not in the agent's --dev-allow list`);
    }
    if ((flags & (O_CREAT | O_EXCL | O_TRUNC)) !== 0) throw new SlaveError('EACCES', `${path}: devices are not created here`);
    const jail = devJail(ctx);
    const host = jail.resolve(path, true);
    // The device's own modes and groups decide, as for the caller on the slave (dialout...).
    ctx.access(caller, jail).need(host, openAccess(flags), `open ${path}`);
    // Never blocking (no read holds a thread), never our controlling terminal.
    const fd = openSync(host, (flags & ~(O_APPEND | O_NOFOLLOW)) | O_NONBLOCK | O_NOCTTY);
    return { fh: ctx.devices.add(fd, (flags & O_NONBLOCK) !== 0) };
  },

  'dev.read': async ({ fh, length, waitMs }, ctx) => {
    const want = Math.min(length, ctx.maxPayload - 4096);
    return ctx.devices.get(fh).read(want, Math.min(waitMs, 60_000));
  },

  'dev.write': async ({ fh, data }, ctx) => ({ written: await ctx.devices.get(fh).write(data) }),

  'dev.release': async ({ fh }, ctx) => {
    ctx.devices.close(fh);
    return {};
  },
};
