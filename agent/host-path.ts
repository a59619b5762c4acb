/**
 * Host paths as Node's fs calls take them.
 *
 * Bytes. Names are bytes on the slave; in the agent a path that is not UTF-8 is a string in
 * surrogateescape form (protocol/name-bytes.ts), which Node would write as UTF-8 of U+FFFD,
 * naming another file. So every fs call takes `fsPath(host)`: the string itself when it is plain
 * Unicode (almost always), else its exact bytes. Names read back from the slave (readdir,
 * readlink, realpath) are read as bytes and made such strings.
 *
 * Length. The kernel refuses a path argument of PATH_MAX bytes or more (ENAMETOOLONG), but a
 * tree may go deeper: a program on the master that works relative to a deep directory (pjdfstest,
 * `mkdir -p` of a long chain, a build in a deep tree) names files whose export-root form is
 * longer, and so does the slave's own tree. Such a path is handed to the call as
 * `/proc/self/fd/N/rest`: N an O_PATH descriptor of a directory on the way, opened by a path
 * short enough (itself through another descriptor when needed), `rest` the remainder. The kernel
 * follows the descriptor's magic link as it would the directories' names, so the call acts
 * exactly as on the whole path. No descriptor is kept from one call to the next: a directory
 * renamed in between must not be reached under its old name.
 *
 * Every path call in the agent is synchronous (docs/architecture.md, "No global lock"), so a
 * descriptor is needed only while its call runs: the descriptors opened for a turn of the event
 * loop are closed at its end, and at most HELD at a time (the oldest first: a call takes one or
 * two paths, made just before it).
 */
import { closeSync, constants, openSync } from 'node:fs';
import { PATH_MAX, hasLoneSurrogates, nameToBytes } from '../protocol/index.js';

/**
 * O_PATH (not in node's constants): the generic value, which x86, ARM, RISC-V, PowerPC and s390
 * share; undefined elsewhere (Alpha, SPARC, PA-RISC have their own), where callers do without.
 */
export const O_PATH = ['x64', 'ia32', 'arm', 'arm64', 'riscv64', 'ppc64', 's390x', 'loong64'].includes(process.arch) ? 0o10000000 : undefined;
/** A directory's descriptor that only names it (libuv adds O_CLOEXEC to every open). */
const DIRECTORY_NAME = (O_PATH ?? constants.O_RDONLY) | constants.O_DIRECTORY;
/** The most bytes of a path opened by its name, so that `/proc/self/fd/N` and the rest fit. */
const PIECE = PATH_MAX - 1024;
const HELD = 64;
const SLASH = 0x2f;

const held: number[] = [];
let closing = false;

function closeHeld(): void {
  closing = false;
  for (const fd of held.splice(0)) closeSync(fd);
}

function hold(fd: number): void {
  held.push(fd);
  if (held.length > HELD) closeSync(held.shift() as number);
  if (!closing) {
    closing = true;
    setImmediate(closeHeld);
  }
}

/**
 * The same file as `bytes` (an absolute path of PATH_MAX bytes or more) by a path under
 * PATH_MAX: each piece of at most PIECE bytes ending before a `/` is opened as a directory,
 * relative to the last. The pieces' own errors (ENOENT, ENOTDIR, EACCES) are the call's.
 */
function throughDirectories(bytes: Buffer): Buffer {
  let base = Buffer.alloc(0);
  let at = 0;
  while (base.length + bytes.length - at >= PATH_MAX) {
    const cut = bytes.lastIndexOf(SLASH, at + PIECE - base.length);
    // Names are at most NAME_MAX bytes, so a piece always holds one; a longer one is the call's
    // ENAMETOOLONG, which the kernel gives for the whole path.
    if (cut <= at) return bytes;
    const fd = openSync(Buffer.concat([base, bytes.subarray(at, cut)]), DIRECTORY_NAME);
    hold(fd);
    base = Buffer.from(`/proc/self/fd/${fd}`);
    at = cut;
  }
  return Buffer.concat([base, bytes.subarray(at)]);
}

/** `host` as an fs call's path argument: its bytes, through a directory's descriptor if long. */
export function fsPath(host: string): string | Buffer {
  return isLongPath(host) ? throughDirectories(nameToBytes(host)) : fsName(host);
}

/** fsPath's bytes, NUL-terminated, for libc's calls. */
export function cPath(host: string): Buffer {
  const path = fsPath(host);
  return Buffer.concat([typeof path === 'string' ? Buffer.from(path) : path, Buffer.of(0)]);
}

/** A name or a symlink's target, as Node takes it: never through a descriptor. */
export function fsName(name: string): string | Buffer {
  return hasLoneSurrogates(name) ? nameToBytes(name) : name;
}

/** Whether `host` is a path fsPath hands over through a directory's descriptor. */
export function isLongPath(host: string): boolean {
  // A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair 4 for 2 units): most paths pass
  // without being measured.
  return host.length * 3 >= PATH_MAX && nameToBytes(host).length >= PATH_MAX;
}
