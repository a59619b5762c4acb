/**
 * The filesystem workloads, one function each, in the order a pass runs them: the timed part is
 * one real program (`dd`, `tar`, `find`, `git`, `rm`); preparation (making it cold, removing
 * leftovers) is untimed. Checks compare what the mount shows and what landed on the slave side
 * with the source; they run on the first pass only and never change a timing.
 */
import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Fixtures } from './fixtures.js';
import { forgetRecentDeletions, goCold } from './page-cache.js';
import { CommandFailedError, runCommand, sh } from './run-command.js';
import type { Target } from './target.js';

export type WorkloadId = 'seq-write' | 'seq-read' | 'untar' | 'find' | 'git-commit' | 'git-status' | 'rm';

export interface WorkloadContext {
  target: Target;
  fixtures: Fixtures;
  /** Run the correctness checks this pass. */
  check: boolean;
  /** Records something wrong that did not stop the workload. */
  note(message: string): void;
}

export interface Workload {
  id: WorkloadId;
  label: string;
  unit: 'MB/s' | 's';
  /** Skipped when this one failed in the same pass. */
  needs?: WorkloadId;
  /** Resolves with the timed milliseconds. */
  run(ctx: WorkloadContext): Promise<number>;
}

const TREE_TIMEOUT_MS = 300_000;

function bigTimeoutMs(f: Fixtures): number {
  // Generous: half a MB/s is a failure worth reporting, not waiting for.
  return Math.max(120_000, (f.sizeBytes / 1e6) * 2000);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/** `find` output that must be the same through the mount and on the slave: mtime to the second. */
async function treeListing(dir: string): Promise<string[]> {
  const script = `cd ${sh(dir)} && find . -printf '%y|%m|%s|%T@|%l|%p\\n'`;
  const { stdout } = await runCommand(script, { timeoutMs: TREE_TIMEOUT_MS });
  return stdout.split('\n').filter((l) => l.length > 0).map((line) => {
    const [type, mode, size, mtime, link, ...path] = line.split('|');
    // Directory sizes are the filesystem's business; sftp carries whole seconds only.
    return [type, mode, type === 'd' ? '-' : size, Math.floor(Number(mtime)), link, path.join('|')].join('|');
  }).sort();
}

/** A failed check command in a few words: how many lines it complained, and the first two. */
function complaint(err: unknown): string {
  if (!(err instanceof CommandFailedError)) return (err as Error).message;
  const nonEmpty = (text: string) => text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  // tar --diff reports differences on stdout; find and cmp complain on stderr.
  const stderr = nonEmpty(err.stderr);
  const lines = stderr.length > 0 ? stderr : nonEmpty(err.stdout);
  if (lines.length === 0) return err.status;
  return `${err.status}, ${lines.length} line(s) like: ${lines.slice(0, 2).join(' ; ')}`;
}

async function checked(ctx: WorkloadContext, what: string, check: () => Promise<string | undefined>): Promise<void> {
  try {
    const problem = await check();
    if (problem) ctx.note(`${what}: ${problem}`);
  } catch (err) {
    ctx.note(`${what}: ${complaint(err)}`);
  }
}

/** The commands of the two sequential workloads on one directory. */
export interface SequentialCommands {
  /** The file both write and read. */
  big: string;
  /** Untimed: no old file, and the source in the page cache. */
  prepareWrite: string;
  write: string;
  read: string;
  timeoutMs: number;
}

/** Shared with the FUSE floor, so it times exactly what the targets are timed on. */
export function sequentialCommands(f: Fixtures, dir: string): SequentialCommands {
  const big = join(dir, 'big');
  return {
    big,
    prepareWrite: `rm -f ${sh(big)} && cat ${sh(f.randomFile)} > /dev/null`,
    write: `dd if=${sh(f.randomFile)} of=${sh(big)} bs=1M conv=fsync status=none`,
    read: `dd if=${sh(big)} of=/dev/null bs=1M status=none`,
    timeoutMs: bigTimeoutMs(f),
  };
}

async function seqWrite(ctx: WorkloadContext): Promise<number> {
  const { fixtures: f, target: t } = ctx;
  const seq = sequentialCommands(f, t.mountPath);
  await runCommand(seq.prepareWrite, { timeoutMs: seq.timeoutMs });
  const { ms } = await runCommand(seq.write, { timeoutMs: seq.timeoutMs });
  if (ctx.check) {
    await checked(ctx, 'written file on the slave side', async () => {
      const size = (await stat(join(t.slavePath, 'big'))).size;
      if (size !== f.sizeBytes) return `size ${size}, expected ${f.sizeBytes}`;
      await runCommand(`cmp ${sh(f.randomFile)} ${sh(join(t.slavePath, 'big'))}`, { timeoutMs: bigTimeoutMs(f) });
      return undefined;
    });
  }
  return ms;
}

async function seqRead(ctx: WorkloadContext): Promise<number> {
  const { fixtures: f, target: t } = ctx;
  const { big, read, timeoutMs } = sequentialCommands(f, t.mountPath);
  try {
    await goCold(t.userspaceCacheMs);
    const { ms } = await runCommand(read, { timeoutMs });
    if (ctx.check) {
      await checked(ctx, 'file read back cold through the mount', async () => {
        await goCold(t.userspaceCacheMs);
        await runCommand(`cmp ${sh(f.randomFile)} ${sh(big)}`, { timeoutMs });
        return undefined;
      });
    }
    return ms;
  } finally {
    await runCommand(`rm -f ${sh(big)}`, { timeoutMs: TREE_TIMEOUT_MS });
  }
}

async function untar(ctx: WorkloadContext): Promise<number> {
  const { fixtures: f, target: t } = ctx;
  const tree = join(t.mountPath, 'tree');
  await runCommand(`rm -rf ${sh(tree)} && mkdir ${sh(tree)}`, { timeoutMs: TREE_TIMEOUT_MS });
  await forgetRecentDeletions(); // the last target's `rm -rf` must not slow this one's creates
  await runCommand(`cat ${sh(f.tarball)} > /dev/null`, { timeoutMs: TREE_TIMEOUT_MS });
  const { ms } = await runCommand(`tar xf ${sh(f.tarball)} -C ${sh(tree)}`, { timeoutMs: TREE_TIMEOUT_MS });
  if (ctx.check) {
    await checked(ctx, 'tar --diff on the slave side', async () => {
      await runCommand(`tar df ${sh(f.tarball)} -C ${sh(join(t.slavePath, 'tree'))}`, { timeoutMs: TREE_TIMEOUT_MS });
      return undefined;
    });
    await checked(ctx, 'tar --diff through the mount', async () => {
      await runCommand(`tar df ${sh(f.tarball)} -C ${sh(tree)}`, { timeoutMs: TREE_TIMEOUT_MS });
      return undefined;
    });
  }
  return ms;
}

async function findLs(ctx: WorkloadContext): Promise<number> {
  const { fixtures: f, target: t } = ctx;
  const tree = join(t.mountPath, 'tree');
  await goCold(t.userspaceCacheMs);
  const { ms } = await runCommand(`find ${sh(tree)} -ls > /dev/null`, { timeoutMs: TREE_TIMEOUT_MS });
  if (ctx.check) {
    await checked(ctx, 'find listing (type, mode, size, mtime, link, path) mount vs slave', async () => {
      const [mounted, slave] = await Promise.all([treeListing(tree), treeListing(join(t.slavePath, 'tree'))]);
      const expected = f.tarEntries + 1; // and the tree directory itself
      if (mounted.length !== expected) return `${mounted.length} entries through the mount, expected ${expected}`;
      const slaveSet = new Set(slave);
      const differing = mounted.filter((line) => !slaveSet.has(line));
      if (differing.length === 0) return undefined;
      return `${differing.length} entries differ, e.g. ${differing.slice(0, 2).join(' ; ')}`;
    });
  }
  return ms;
}

async function gitCommit(ctx: WorkloadContext): Promise<number> {
  const { fixtures: f, target: t } = ctx;
  const tree = join(t.mountPath, 'tree');
  const inTree = { cwd: tree, env: f.gitEnv, timeoutMs: TREE_TIMEOUT_MS };
  await runCommand('git init -q', inTree);
  const { ms } = await runCommand('git add -A && git commit -q -m x', inTree);
  if (ctx.check) {
    await checked(ctx, 'git fsck on the slave side', async () => {
      const inSlaveTree = { cwd: join(t.slavePath, 'tree'), env: f.gitEnv, timeoutMs: TREE_TIMEOUT_MS };
      await runCommand('git fsck --no-progress --no-dangling', inSlaveTree);
      const { stdout } = await runCommand('git rev-list --count HEAD', inSlaveTree);
      return stdout.trim() === '1' ? undefined : `${stdout.trim()} commits, expected 1`;
    });
  }
  return ms;
}

async function gitStatus(ctx: WorkloadContext): Promise<number> {
  const { fixtures: f, target: t } = ctx;
  await goCold(t.userspaceCacheMs);
  const inTree = { cwd: join(t.mountPath, 'tree'), env: f.gitEnv, timeoutMs: TREE_TIMEOUT_MS };
  const { ms, stdout } = await runCommand('git status --porcelain', inTree);
  // Always checked: it costs nothing, and a non-empty status right after a commit is a bug.
  const changes = stdout.split('\n').filter((l) => l.length > 0);
  if (changes.length > 0) {
    ctx.note(`git status after the commit lists ${changes.length} changes, e.g. ${changes.slice(0, 3).join(' ; ')}`);
  }
  return ms;
}

async function rmTree(ctx: WorkloadContext): Promise<number> {
  const { target: t } = ctx;
  const tree = join(t.mountPath, 'tree');
  // The same entries for every filesystem: the repository the git workloads made (thousands of
  // objects where git ran; none, or a part, on sshfs, where they fail) goes first, untimed.
  await runCommand(`rm -rf ${sh(join(tree, '.git'))} && sync ${sh(t.mountPath)}`, { timeoutMs: TREE_TIMEOUT_MS });
  // Timed up to an fsync of the directory that held it (coreutils `sync DIR`): a filesystem
  // that answers removals before they are applied is timed until they are, as one that waits.
  const { ms } = await runCommand(`rm -rf ${sh(tree)} && sync ${sh(t.mountPath)}`, { timeoutMs: TREE_TIMEOUT_MS });
  if (await exists(tree)) ctx.note(`${tree} still exists after rm -rf`);
  if (await exists(join(t.slavePath, 'tree'))) ctx.note('the tree still exists on the slave side after rm -rf');
  return ms;
}

export function workloads(f: Fixtures): Workload[] {
  const mib = f.sizeBytes / 1024 / 1024;
  return [
    { id: 'seq-write', label: `Sequential write, ${mib} MiB + fsync`, unit: 'MB/s', run: seqWrite },
    { id: 'seq-read', label: `Cold sequential read, ${mib} MiB`, unit: 'MB/s', needs: 'seq-write', run: seqRead },
    { id: 'untar', label: `Untar npm (${f.tarEntries} entries)`, unit: 's', run: untar },
    { id: 'find', label: 'Cold `find -ls` of the tree', unit: 's', needs: 'untar', run: findLs },
    { id: 'git-commit', label: '`git add -A && git commit`', unit: 's', needs: 'untar', run: gitCommit },
    { id: 'git-status', label: 'Cold `git status`', unit: 's', needs: 'git-commit', run: gitStatus },
    { id: 'rm', label: '`rm -rf` of the tree', unit: 's', needs: 'untar', run: rmTree },
  ];
}
