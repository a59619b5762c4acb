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

/** A test for paths matching any of `globs` (also the agent's --exec-allow: proc/exec-policy.ts). */
export function globFilter(globs: string[]): (path: string) => boolean {
  const patterns = globs.map(globToRegExp);
  return (path) => patterns.some((p) => p.test(path));
}

export const devAllowFilter = globFilter;
