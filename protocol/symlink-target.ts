/**
 * What a slave's symlink shows on the master. The master's kernel follows the targets a mount
 * shows, from the link's place in the mount: an absolute target, or `..` above the mount's
 * root, would lead into the master's own files. The slave's kernel (and the agent's root jail)
 * reads the same target inside the slave's root, where `..` at `/` stays at `/`. So every
 * target is shown as the relative path that leads, inside the mount, where it leads on the
 * slave; each further link on the way is itself shown this way when the master's kernel
 * follows it. Used by the file mount's readlink and the agent's device tree.
 */
import { SlaveError } from './errors.js';

/** The longest target the kernel takes from a FUSE readlink (a page, less the NUL). */
const MAX_TARGET_BYTES = 4095;

/**
 * `from` (components) walked through `path`'s components lexically: `.` and empty ones dropped,
 * `..` taking one off but stopping at `/`, as at the slave's root.
 */
function lexicalWalk(from: string[], path: string): string[] {
  const components = [...from];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') components.pop();
    else components.push(part);
  }
  return components;
}

/**
 * The target the mount shows for the link at `linkPath` (its path from the mount's root, as the
 * kernel names it: canonical, absolute) whose slave-side target is `target`.
 *
 * - A relative target whose `..` all come first and stay at or below the root is returned as it
 *   is, byte for byte (tools compare readlink's output): the kernel names the link by its
 *   canonical path, so those leading steps go exactly where they go on the slave.
 * - An absolute target becomes relative to the link's directory: `/etc/x -> /etc/shadow` shows
 *   `shadow`, `/a/b/l -> /etc/hosts` shows `../../etc/hosts`, `/l -> /` shows `.`.
 * - A relative target climbing above the root is clamped as the slave's kernel does it
 *   (`/a/l -> ../../../etc` shows `../etc`).
 * - A `..` after a name is resolved lexically (`a/s/../x` shows `a/x`). Kept, it could leave
 *   the mount: if `s` is a link to the root (shown as `..`), the master's kernel would then take
 *   `..` from the mount's root to the master's directory above it, where the slave's kernel
 *   stays at its root; which of those names is a link cannot be known without asking the slave.
 *   Where `s` is a link, the slave reads such a target differently (rare: tools seldom write
 *   them).
 *
 * A target that names a directory by its end (`/etc/`, `/etc/.`, `..`) still does. Whatever is
 * shown has its `..` only in front, no more of them than the link's depth: it cannot leave the
 * mount. A shown target too long for the kernel (an absolute target of a link some thousand
 * directories deep) is ENAMETOOLONG rather than cut short, which could turn a name like `..x`
 * into `..`.
 */
export function shownSymlinkTarget(linkPath: string, target: string): string {
  const linkDir = lexicalWalk([], linkPath).slice(0, -1);
  const parts = target.split('/');
  const absolute = target.startsWith('/');

  // The leading `..` of a relative target: exact, since linkDir is the link's canonical place.
  let depth = absolute ? 0 : linkDir.length;
  let climbs = false;
  let first = 0;
  for (; first < parts.length; first++) {
    const part = parts[first];
    if (part === '' || part === '.') continue;
    if (part !== '..') break;
    if (depth === 0) climbs = true;
    else depth--;
  }
  const rest = parts.slice(first);
  if (!absolute && !climbs && !rest.includes('..')) return target;

  const resolved = lexicalWalk(linkDir.slice(0, depth), rest.join('/'));
  let common = 0;
  while (common < resolved.length && common < linkDir.length && resolved[common] === linkDir[common]) common++;
  const steps = [...new Array<string>(linkDir.length - common).fill('..'), ...resolved.slice(common)];
  let shown = steps.length === 0 ? '.' : steps.join('/');
  const last = parts[parts.length - 1];
  const namesDirectory = last === '' || last === '.' || last === '..';
  if (namesDirectory && steps.length > 0 && steps[steps.length - 1] !== '..') shown += '/';
  if (Buffer.byteLength(shown) > MAX_TARGET_BYTES) {
    throw new SlaveError('ENAMETOOLONG', `${linkPath}: its target would show as more than ${MAX_TARGET_BYTES} bytes`);
  }
  return shown;
}
