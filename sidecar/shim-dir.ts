/**
 * The shim directory a test puts first on its PATH: the static shim itself as
 * `splitbrain-exec`, and one symlink to it per bridged command (`uname -> splitbrain-exec`).
 * The binary is copied in, not linked, so the directory works bind-mounted into any container.
 */
import { copyFile, chmod, lstat, mkdir, readdir, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProcessClient } from './remote-process.js';

export const SHIM_NAME = 'splitbrain-exec';
/** Built from shim/ by `npm run build`. */
export const SHIM_BINARY = fileURLToPath(new URL('../shim/splitbrain-exec', import.meta.url));

/** The test's own interpreters and shell stay local with --bridge-all (globs, as fnmatch). */
export const DEFAULT_KEEP = [
  'sh', 'bash', 'dash', 'ash', 'zsh', 'busybox', 'env', 'python', 'python3*', 'pip*', 'pytest*',
  'node', 'nodejs', 'npm', 'npx', 'perl*', 'ruby*', SHIM_NAME,
];

export class ShimDirError extends Error {
  override name = 'ShimDirError';
}

const COMMAND = /^[^/\0]+$/;

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

export function keepFilter(keep: string[]): (command: string) => boolean {
  const patterns = keep.map(globToRegExp);
  return (command) => !patterns.some((p) => p.test(command));
}

/** Makes `dir` hold the shim and exactly these command links; returns the links made. */
export async function fillShimDir(dir: string, commands: Iterable<string>, shimBinary = SHIM_BINARY): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const wanted = new Set<string>();
  for (const command of commands) {
    if (!COMMAND.test(command) || command === '.' || command === '..' || command === SHIM_NAME) {
      throw new ShimDirError(`cannot bridge a command named ${JSON.stringify(command)}`);
    }
    wanted.add(command);
  }
  const staged = join(dir, `.${SHIM_NAME}.new`);
  await copyFile(shimBinary, staged);
  await chmod(staged, 0o755);
  await rename(staged, join(dir, SHIM_NAME)); // atomic: a running shim keeps its old file
  for (const name of await readdir(dir)) {
    if (name === SHIM_NAME || wanted.has(name)) continue;
    const path = join(dir, name);
    if ((await lstat(path)).isSymbolicLink() && await readlink(path) === SHIM_NAME) await unlink(path);
  }
  for (const command of wanted) {
    const path = join(dir, command);
    const existing = await lstat(path).catch(() => undefined);
    if (existing?.isSymbolicLink() && await readlink(path) === SHIM_NAME) continue;
    if (existing) throw new ShimDirError(`${path} exists and is not a link to ${SHIM_NAME}`);
    await symlink(SHIM_NAME, path);
  }
  return [...wanted].sort();
}

/**
 * Every executable on the slave's PATH, as a session there sees it (asked of the slave's own
 * shell, so it is the PATH the bridged commands will be found on).
 */
export async function listSlaveCommands(procs: ProcessClient): Promise<string[]> {
  const script = 'IFS=:; for d in $PATH; do for f in "$d"/*; do '
    + '[ -f "$f" ] && [ -x "$f" ] && printf "%s\\n" "${f##*/}"; done; done; true';
  const { out, err, status } = await procs.capture(['sh', '-c', script]);
  if (status.code !== 0) throw new ShimDirError(`listing the slave's commands failed (${status.code ?? status.signal}): ${err.trim()}`);
  return [...new Set(out.split('\n').filter((name) => COMMAND.test(name)))].sort();
}
