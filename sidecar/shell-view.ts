/**
 * The master as `splitbrain shell`'s command sees it: this machine's tree, with the slave's paths
 * bound over some of it (shell.ts), in a mount namespace of the command's own.
 *
 * A path to bind over may not exist here (`/slave`, `/dev/ttyBOARD`). Making it would write to
 * the master's own filesystems (and, without root, is not even allowed), so nothing is made
 * there: the directory that should hold it is shadowed in the namespace by a tmpfs holding binds
 * of all its entries, plus the new one, as bubblewrap builds a sandbox's tree. The root itself
 * cannot be shadowed in place (a process's root is not a path lookup), so for a new entry in `/`
 * the command gets a new root: a tmpfs with every entry of `/` bound into it, entered with
 * unshare --root.
 *
 * The tmpfs and binds of a shadow or a new root are left to the namespace, which takes them when
 * its last process ends; the binds of the slave's paths are undone first (`undo`), before the
 * mounts they show are stopped.
 */
import { chmod, lstat, mkdir, readdir, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { systemCommand } from './system-command.js';

export class MasterViewError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MasterViewError';
  }
}

type Undo = (() => Promise<void>)[];

export class MasterView {
  /** Where the command's `/` is in our namespace: '' for the master's own. */
  private rootAt = '';
  /** Directories (command's paths) that are ours: a tmpfs, or made in one. */
  private readonly ours = new Set<string>();
  private shadows = 0;

  /** `work`: a directory of ours (on a tmpfs) where a new root and shadows are made. */
  constructor(private readonly work: string, private readonly undo: Undo) {}

  /** The command's new root, if it needs one (for unshare --root), else undefined. */
  get root(): string | undefined {
    return this.rootAt === '' ? undefined : this.rootAt;
  }

  /** Binds `source` (ours) at the command's `target`, made first where the master lacks it. */
  async bind(source: string, target: string): Promise<void> {
    const at = await this.mountpoint(target, (await stat(source)).isDirectory());
    // rbind: a directory may hold mounts of its own (the devices on the slave's dev/).
    await mount(['--rbind', source, at]);
    this.undo.push(() => systemCommand('umount', ['-l', at]).catch(() => undefined));
  }

  private here(path: string): string {
    return this.rootAt + path;
  }

  private async mountpoint(target: string, isDir: boolean): Promise<string> {
    // Links are followed, as mount(8) follows them (a map over /dev/serial/by-id/...).
    const existing = await stat(this.here(target)).catch(() => undefined);
    if (!existing && await lstat(this.here(target)).then(() => true, () => false)) {
      throw new MasterViewError(`${target}: a link to nothing on this machine`);
    }
    if (existing) {
      if (existing.isDirectory() !== isDir) {
        throw new MasterViewError(`${target}: the slave's is ${isDir ? 'a directory' : 'not a directory'}, this machine's ${existing.isDirectory() ? 'is' : 'is not'}`);
      }
      return this.here(target);
    }
    // The deepest directory that exists, then what is missing below it, made in a tmpfs.
    const missing: string[] = [target];
    let parent = posix.dirname(target);
    while (parent !== '/' && !(await stat(this.here(parent)).then((st) => st.isDirectory(), () => false))) {
      missing.unshift(parent);
      parent = posix.dirname(parent);
    }
    if (!this.ours.has(parent)) {
      if (parent === '/') await this.newRoot();
      else await this.shadow(parent);
    }
    for (const path of missing) {
      if (path === target && !isDir) await writeFile(this.here(path), '', { flag: 'wx' });
      else await mkdir(this.here(path));
      this.ours.add(path);
    }
    return this.here(target);
  }

  /** A tmpfs at `at` that rbind does not copy (it is inside what we bind back into it). */
  private async ownTmpfs(at: string): Promise<void> {
    await mkdir(at, { recursive: true });
    await mount(['-t', 'tmpfs', '-o', 'mode=0755', 'splitbrain-shell', at]);
    await mount(['--make-unbindable', at]);
  }

  /** Every entry of the directory `from` again in `to`: directories and files bound, links copied. */
  private async bindEntries(from: string, to: string): Promise<void> {
    for (const entry of await readdir(from, { withFileTypes: true })) {
      const source = join(from, entry.name);
      const at = join(to, entry.name);
      if (entry.isSymbolicLink()) {
        await symlink(await readlink(source), at);
      } else if (entry.isDirectory()) {
        await mkdir(at);
        await mount(['--rbind', source, at]);
      } else {
        await writeFile(at, '');
        await mount(['--bind', source, at]);
      }
    }
  }

  private async newRoot(): Promise<void> {
    const root = join(this.work, 'root');
    await this.ownTmpfs(root);
    await this.bindEntries('/', root);
    this.rootAt = root;
    this.ours.add('/');
  }

  /**
   * Shadows the command's directory `path` by a tmpfs with its entries bound back, filled aside
   * and then moved over it: the directory may hold our own (a map into $TMPDIR), which the
   * tmpfs would otherwise hide before its entries were read.
   */
  private async shadow(path: string): Promise<void> {
    const staging = join(this.work, 'shadows', String(this.shadows++));
    await this.ownTmpfs(staging);
    await chmod(staging, (await stat(this.here(path))).mode & 0o7777);
    await this.bindEntries(this.here(path), staging);
    await mount(['--move', staging, this.here(path)]);
    // Bindable again: a new root made later binds it with the rest of its parent.
    await mount(['--make-private', this.here(path)]);
    this.ours.add(path);
  }

}

function mount(args: string[]): Promise<void> {
  return systemCommand('mount', args);
}
