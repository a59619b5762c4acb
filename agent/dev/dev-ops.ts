/**
 * Device ops: the slave's --dev-root as a tree of files. Directories and symlinks are as on the
 * slave; character and block devices and FIFOs are presented as regular files of size 0 with
 * their permissions (never as device nodes: on the master those numbers would be the master's own
 * devices, and a FIFO the master's own pipe). Opening one needs --dev-allow; it is then read and
 * written as a stream.
 */
import { posix } from 'node:path';
import { constants, type BigIntStats } from 'node:fs';
import { isatty } from 'node:tty';
import {
  SlaveError, S_IFCHR, S_IFREG, isOutputSubjectOf, openAccess, outputSubject, readsWith, shownSymlinkTarget, type Caller, type ReaddirEntry,
  type WireAttr,
} from '../../protocol/index.js';
import { REPLY_OVERHEAD, type AgentContext, type HandlerTable } from '../context.js';
import type { RootJail } from '../root-jail.js';
import { statToWire } from '../fs/stat-attr.js';
import type { DevicesBackend, TerminalKind } from '../backends/devices-backend.js';
import type { FilesBackend } from '../backends/files-backend.js';
import type { OfferedLink } from '../links.js';

const { O_NONBLOCK, O_CREAT, O_EXCL, O_TRUNC } = constants;

/**
 * Most a pushed device may have sent and not yet credited, whatever a master asks: what the agent
 * keeps for it is bounded by this (a terminal needs a few KiB; /dev/urandom streams well with it).
 */
const MAX_DEVICE_WINDOW = 1024 * 1024;

/**
 * The attributes the master sees: devices become size-0 regular files, or, for a master that
 * relays terminals (`terminals`), the slave's terminals character devices without numbers. A link
 * to a terminal (a board's /dev/ttyBOARD -> pts/3, udev's serial/by-id/...) is presented as the
 * terminal too, with the terminal's owner and modes: the master relays it by that name, so that
 * it opens whatever the link names when it opens, after the slave restarted as before.
 */
function presented(os: DevicesBackend, st: BigIntStats, terminals = false, target?: () => BigIntStats | undefined): WireAttr {
  const isTerminal = (rdev: bigint) => os.terminalKind(rdev) !== undefined;
  let device = st;
  if (terminals && st.isSymbolicLink() && target) {
    const linked = target();
    if (linked?.isCharacterDevice() && isTerminal(linked.rdev)) device = linked;
  }
  const wire = statToWire(device);
  // FIFOs too: shown as they are, the master's kernel would serve them as pipes of its own.
  if (device.isCharacterDevice() || device.isBlockDevice() || device.isFIFO()) {
    const relayed = terminals && device.isCharacterDevice() && isTerminal(device.rdev);
    wire[0] = (relayed ? S_IFCHR : S_IFREG) | (Number(device.mode) & 0o7777); // mode
    wire[4] = 0; // size
    wire[5] = 0; // blocks
    wire[10] = 0; // rdev
  }
  return wire;
}

/** Links followed to a device at most, as Linux's own limit before ELOOP. */
const MAX_LINKS = 40;

/**
 * The host path of the device at `path` of the device tree, its links followed as the device
 * tree reads them (deviceTreeTarget): /dev/ttyBOARD -> /dev/pts/3 leads to the tree's pts/3.
 * The root jail alone would take /dev/pts/3 inside the tree as <dev root>/dev/pts/3.
 */
function devicePath(files: FilesBackend, jail: RootJail, path: string): string {
  let slavePath = path;
  for (let links = 0; links <= MAX_LINKS; links++) {
    const host = jail.resolve(slavePath);
    let target: string;
    try {
      if (!files.lstat(host).isSymbolicLink()) return host;
      target = files.readlink(host);
    } catch {
      return host; // not there: the caller's stat or open says so
    }
    const inTree = deviceTreeTarget(target, jail.root);
    slavePath = inTree.startsWith('/') ? inTree : posix.join(posix.dirname(slavePath), inTree);
  }
  throw new SlaveError('ELOOP', `${path}: too many links`);
}

/** What the link at `path` of the device tree leads to, inside the tree, or undefined. */
function linkedStat(files: FilesBackend, jail: RootJail, path: string): BigIntStats | undefined {
  try {
    return files.stat(devicePath(files, jail, path), { bigint: true });
  } catch {
    return undefined;
  }
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

/** Opens a device for `caller` as the agent's policy and the device's modes allow. */
function openDevice(path: string, flags: number, ctx: AgentContext, caller: Caller | undefined): number {
  // The policy judges the path as it resolves: unnormalised, '/pts/..' matched 'pts/*' and
  // opened the dev root itself (found by test/integration/hostile-input.test.ts).
  const relative = posix.normalize(`/${path}`).replace(/^\/+/, '');
  if (!ctx.devAllow(relative)) {
    throw new SlaveError('EACCES', `${path}: not in the agent's --dev-allow list`);
  }
  if ((flags & (O_CREAT | O_EXCL | O_TRUNC)) !== 0) throw new SlaveError('EACCES', `${path}: devices are not created here`);
  const jail = devJail(ctx);
  const host = devicePath(ctx.backend.files, jail, path);
  // The device's own modes and groups decide, as for the caller on the slave (dialout...).
  ctx.access(caller, jail).need(host, openAccess(flags), `open ${path}`);
  // Never blocking (no read holds a thread), never our controlling terminal: the backend's open.
  return ctx.backend.devices.openDevice(host, flags);
}

/** The terminal `path` names (through a link to it): its host path and kind; ENOTTY for anything else. */
function terminalAt(path: string, ctx: AgentContext): { host: string; kind: TerminalKind } {
  const host = devicePath(ctx.backend.files, devJail(ctx), path);
  const st = ctx.backend.files.lstat(host, { bigint: true });
  const kind = st.isCharacterDevice() ? ctx.backend.devices.terminalKind(st.rdev) : undefined;
  if (kind === undefined) throw new SlaveError('ENOTTY', `${path} is not a terminal`);
  return { host, kind };
}

function pushed(ctx: AgentContext, fh: number): NonNullable<ReturnType<AgentContext['devices']['get']>['push']> {
  const push = ctx.devices.get(fh).push;
  if (!push) throw new SlaveError('EINVAL', `device handle ${fh} was not opened with dev.stream`);
  return push;
}

function devJail(ctx: AgentContext): RootJail {
  if (!ctx.devJail) throw new SlaveError('ENODEV', 'this agent serves no devices (its --dev-root is not a directory)');
  return ctx.devJail;
}

export const devOps: HandlerTable = {
  'dev.getattr': async ({ path, terminals }, ctx) => {
    const jail = devJail(ctx);
    const files = ctx.backend.files;
    return { attr: presented(ctx.backend.devices, files.lstat(jail.resolve(path), { bigint: true }), terminals, () => linkedStat(files, jail, path)) };
  },

  'dev.readdir': async ({ path, terminals }, ctx) => {
    const files = ctx.backend.files;
    const dir = devJail(ctx).resolve(path, true);
    const entries: ReaddirEntry[] = files.readdir(dir).map((name) => {
      try {
        const slavePath = posix.join(path, name);
        return [name, presented(ctx.backend.devices, files.lstat(`${dir}/${name}`, { bigint: true }), terminals, () => linkedStat(files, devJail(ctx), slavePath))];
      } catch {
        return [name, null]; // gone meanwhile (a pts closed)
      }
    });
    return { entries };
  },

  'dev.readlink': async ({ path, inTree }, ctx) => {
    const jail = devJail(ctx);
    const target = deviceTreeTarget(ctx.backend.files.readlink(jail.resolve(path)), jail.root);
    // A master that does not ask for the tree's path shows what it gets: relative, inside.
    return { target: inTree === true ? target : shownSymlinkTarget(path, target) };
  },

  'dev.open': async ({ path, flags }, ctx, caller) => {
    const fd = openDevice(path, flags, ctx, caller);
    return { fh: ctx.devices.add(fd, (flags & O_NONBLOCK) !== 0) };
  },

  'dev.stream': async ({ path, flags, output, window, terminal, link }, ctx, caller) => {
    // As a process's output: only to this agent's own output subjects (proc-ops.ts).
    if (!isOutputSubjectOf(ctx.hello().agentId, output)) {
      throw new SlaveError('EINVAL', `output subject ${output} is not one of ${outputSubject(ctx.hello().agentId, '*')}`);
    }
    const fd = openDevice(path, flags, ctx, caller);
    let termios = null;
    try {
      // The master's pseudo-terminal applies the line discipline; the device passes bytes as they are.
      if (terminal && isatty(fd)) {
        termios = ctx.backend.devices.makeRaw(fd);
        // As a serial port that was not open hears nothing: what came while nobody had it goes.
        ctx.backend.devices.flush(fd, 'input');
      }
    } catch (err) {
      ctx.log.warn({ err, path }, 'terminal settings could not be read: relaying it as a plain stream');
    }
    const publish = (data: Uint8Array) => ctx.devices.publish(output, data);
    let offered = undefined as OfferedLink | undefined; // set by add's callback
    const fh = ctx.devices.add(fd, false, (fh) => {
      // Offered to a master that asks (one that knows links), when this agent has them.
      offered = link === true ? ctx.links?.offer(fh, publish) : undefined;
      return {
        hostPath: devicePath(ctx.backend.files, devJail(ctx), path),
        sink: offered?.sink ?? publish, window: Math.min(window, MAX_DEVICE_WINDOW), maxChunk: ctx.maxPayload - REPLY_OVERHEAD,
        terminal: termios, endLink: offered?.close,
      };
    }, readsWith(flags));
    return link === true ? { fh, termios, link: offered?.offer ?? null } : { fh, termios };
  },

  'dev.input': async ({ fh, seq, data, credit, received }, ctx) => {
    const device = ctx.devices.get(fh);
    if (!device.push) throw new SlaveError('EINVAL', `device handle ${fh} was not opened with dev.stream`);
    device.input(seq, data);
    if (credit > 0 || received > 0) device.push.credit(credit, received);
    return {};
  },

  'dev.tcgetattr': async ({ path }, ctx) => {
    const { host, kind } = terminalAt(path, ctx);
    if (kind === 'serial') return { termios: ctx.devices.lastTermios(host) ?? null };
    const fd = ctx.backend.devices.openDevice(host, constants.O_RDONLY);
    try {
      return { termios: ctx.backend.devices.getTermios(fd) };
    } finally {
      ctx.backend.devices.close(fd);
    }
  },

  'dev.credit': async ({ fh, bytes, received }, ctx) => {
    const push = pushed(ctx, fh);
    push.credit(bytes, received);
    return { sent: push.nextSeq };
  },

  'dev.resend': async ({ fh, from, unlink }, ctx) => {
    if (unlink === true) ctx.devices.get(fh).unlink();
    const sent = pushed(ctx, fh).resend(from);
    ctx.log.debug({ fh, from, sent }, 'device events sent again');
    return {};
  },

  'dev.termios': async ({ fh, ...change }, ctx) => {
    const device = ctx.devices.get(fh);
    await device.inOrder(() => ctx.backend.devices.changeLine(device.fd, change));
    return {};
  },

  'dev.setline': async ({ path, ...change }, ctx, caller) => {
    const { host, kind } = terminalAt(path, ctx);
    // As `stty -F` on the slave: open (not read), set, close; the device keeps its line.
    const fd = openDevice(path, constants.O_WRONLY | constants.O_NOCTTY, ctx, caller);
    try {
      ctx.backend.devices.changeLine(fd, change);
      if (kind === 'serial') ctx.devices.keepTermios(host, ctx.backend.devices.getTermios(fd));
    } finally {
      ctx.backend.devices.close(fd);
    }
    return {};
  },

  'dev.flush': async ({ fh, queue }, ctx) => {
    const device = ctx.devices.get(fh);
    await device.inOrder(() => ctx.backend.devices.flush(device.fd, queue));
    return {};
  },

  'dev.flock': async ({ fh, lock }, ctx) => {
    const device = ctx.devices.get(fh);
    if (!ctx.backend.devices.flock(device.fd, lock)) throw new SlaveError('EWOULDBLOCK', `flock ${lock}: another open file holds a lock on the device`);
    if (lock === 'un') ctx.locks.dropped(`dev:${fh}`);
    else ctx.locks.taken(`dev:${fh}`, device.fd, `device handle ${fh}`, () => ctx.devices.find(fh) === device);
    return {};
  },

  'dev.break': async ({ fh, ms }, ctx) => {
    const device = ctx.devices.get(fh);
    await device.inOrder(() => ctx.backend.devices.sendBreak(device.fd, ms));
    return {};
  },

  'dev.read': async ({ fh, length, waitMs }, ctx) => {
    const want = Math.min(length, ctx.maxPayload - 4096);
    return ctx.devices.get(fh).read(want, Math.min(waitMs, 60_000));
  },

  'dev.write': async ({ fh, data }, ctx) => ({ written: await ctx.devices.get(fh).write(data) }),

  'dev.release': async ({ fh }, ctx) => {
    ctx.locks.dropped(`dev:${fh}`); // the lock goes with the descriptor, closed now
    ctx.devices.close(fh);
    return {};
  },
};
