/**
 * Globs of slash-separated paths, as the agent's policies take them (--dev-allow, --exec-allow):
 * `*` and `?` stay within one path component.
 */
function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${body}$`);
}

/** A test for paths matching any of `globs`. */
export function globFilter(globs: string[]): (path: string) => boolean {
  const patterns = globs.map(globToRegExp);
  return (path) => patterns.some((p) => p.test(path));
}
