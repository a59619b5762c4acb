/**
 * Notices when our mountpoint is gone (`splitbrain umount`, `fusermount -u`, a lazy unmount by
 * someone else), so the serving process ends instead of lingering. The binding's session ends
 * only once the kernel lets go of the mount, which after a lazy unmount waits for the last open
 * file to close; /proc/self/mountinfo shows the mountpoint gone at once.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export interface MountEntry {
  mountPoint: string;
  /** In a shared peer group: mounts made under it propagate (compose/share-dir.ts). */
  shared: boolean;
}

function parseMountinfo(text: string): MountEntry[] {
  return text.split('\n').filter((line) => line !== '').map((line) => {
    const fields = line.split(' ');
    const optional = fields.slice(6, fields.indexOf('-'));
    return { mountPoint: unescapeMountinfo(fields[4] ?? ''), shared: optional.some((f) => f.startsWith('shared:')) };
  });
}

/** This process's mount table, from /proc/self/mountinfo. */
export async function mountTable(): Promise<MountEntry[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/**
 * Paths below `mountPath` that something is mounted on, relative to it ('/dev' for
 * `<mountPath>/dev`): names the FUSE mount must not invalidate on kernels that would detach
 * those mounts with the name (fuse-adapter.ts).
 */
export function mountpointsUnder(mountPath: string): Set<string> {
  const under = new Set<string>();
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return under;
  }
  const prefix = `${mountPath.replace(/\/+$/, '')}/`;
  for (const { mountPoint } of parseMountinfo(text)) {
    if (mountPoint.startsWith(prefix)) under.add(mountPoint.slice(prefix.length - 1));
  }
  return under;
}

export async function isMounted(mountPath: string): Promise<boolean> {
  return (await mountTable()).some((m) => m.mountPoint === mountPath);
}

/** Resolves once `mountPath` is no longer a mountpoint; checks every `intervalMs`. */
export function whenUnmounted(mountPath: string, intervalMs = 1000): { done: Promise<void>; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const done = new Promise<void>((resolve) => {
    const check = async () => {
      if (stopped) return;
      if (!(await isMounted(mountPath).catch(() => true))) {
        resolve();
        return;
      }
      timer = setTimeout(check, intervalMs);
    };
    timer = setTimeout(check, intervalMs);
  });
  return { done, stop: () => { stopped = true; clearTimeout(timer); } };
}
