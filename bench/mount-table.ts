/** The kernel's mount table (/proc/mounts): is a path mounted, and what is mounted under a dir. */
import { readFile } from 'node:fs/promises';

function unescapeField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export async function mountPoints(): Promise<string[]> {
  const table = await readFile('/proc/mounts', 'utf8');
  return table.split('\n').map((line) => line.split(' ')[1]).filter((f): f is string => f !== undefined)
    .map(unescapeField);
}

export async function isMounted(mountPath: string): Promise<boolean> {
  return (await mountPoints()).includes(mountPath);
}

/** For polling: true once `mountPath` is mounted, undefined until then. */
export async function mountedYet(mountPath: string): Promise<true | undefined> {
  return (await isMounted(mountPath)) ? true : undefined;
}

/** Mountpoints at or below `dir`. */
export async function mountsUnder(dir: string): Promise<string[]> {
  return (await mountPoints()).filter((m) => m === dir || m.startsWith(`${dir}/`));
}
