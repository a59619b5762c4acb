/**
 * Which devices masters may open: globs of paths relative to the dev root (`*` and `?` stay
 * within one path component). The default lets tests talk to terminals and serial ports and
 * use the harmless devices, and nothing else: a slave's disks need the operator's word.
 */
export const DEFAULT_DEV_ALLOW = ['tty*', 'pts/*', 'null', 'zero', 'urandom', 'random'];

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${body}$`);
}

export function devAllowFilter(globs: string[]): (relativePath: string) => boolean {
  const patterns = globs.map(globToRegExp);
  return (relativePath) => patterns.some((p) => p.test(relativePath));
}
