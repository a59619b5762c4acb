/**
 * The host directory a sidecar shares with its test container. Its mounts reach the test
 * container by propagation, which needs the directory on a shared mount of the host
 * (scripts/docker-setup.sh makes /run/splitbrain one). When a run ends, whatever mount is left
 * under it (a sidecar that died keeps its propagated copies here, disconnected) is detached,
 * and the directory removed without ever crossing into a mount: it never deletes a slave's file.
 */
import { execFile } from 'node:child_process';
import { lstat, mkdir, readdir, realpath, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { mountTable } from '../mount/mount-watch.js';

const within = (path: string, dir: string) => path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);

/** Makes `<root>/<name>` for one run; refuses when `root` is not on a shared mount. */
export async function prepareShareDir(root: string, name: string): Promise<string> {
  await mkdir(root, { recursive: true });
  const real = await realpath(root);
  const holder = (await mountTable()).filter((m) => within(real, m.mountPoint))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0];
  if (!holder?.shared) {
    throw new Error(`${real} is not on a shared mount (it is on ${holder?.mountPoint ?? '?'}), so the sidecar's mounts `
      + `would not reach the test container: run 'mount --bind ${real} ${real} && mount --make-shared ${real}' `
      + '(scripts/docker-setup.sh does), or choose another --share-dir');
  }
  const dir = join(real, name);
  await mkdir(dir);
  return dir;
}

/** Detaches every mount at or below `dir`, deepest first, then removes `dir` without crossing into a mount. */
export async function releaseShareDir(dir: string): Promise<void> {
  const mounts = (await mountTable()).map((m) => m.mountPoint).filter((p) => within(p, dir))
    .sort((a, b) => b.length - a.length);
  for (const mountPoint of mounts) {
    await promisify(execFile)('umount', ['-l', mountPoint]).catch(() => undefined);
  }
  const left = (await mountTable()).filter((m) => within(m.mountPoint, dir));
  if (left.length > 0) throw new Error(`still mounted, not removed: ${left.map((m) => m.mountPoint).join(', ')}`);
  const top = await lstat(dir).catch(() => null);
  if (top) await removeTree(dir, top.dev);
}

async function removeTree(path: string, dev: number): Promise<void> {
  const st = await lstat(path);
  if (st.dev !== dev) throw new Error(`${path} is on another filesystem; not removed`);
  if (!st.isDirectory()) {
    await unlink(path);
    return;
  }
  for (const name of await readdir(path)) await removeTree(join(path, name), dev);
  await rmdir(path);
}
