/**
 * What a slave's symlink shows on the master, and what a link made through a mount stores on
 * the slave. The master's kernel follows the targets a mount shows, from the link's place in the
 * mount: an absolute target shown as stored, or `..` above the mount's root, would lead into the
 * master's own files. The slave's kernel (and the agent's root jail) reads the same target inside
 * the slave's root, where `..` at `/` stays at `/`. Two safe ways to show it:
 *
 * - translated (the default, `translatedSymlinkTarget`): an absolute target is shown under the
 *   path where the mount's callers see the slave's root (`/opt/fw/v2` as `MNT/opt/fw/v2`), and a
 *   link made through the mount to a path under it is stored with that prefix replaced by `/`
 *   (`storedSymlinkTarget`), so it is a valid link on the slave and reads back as written;
 * - relative (`shownSymlinkTarget`): every target relative to the link.
 *
 * Either way a target never leads out of the mount, wherever a chain of links goes: each further
 * link on the way is itself shown this way when the master's kernel follows it. Used by the file
 * mount, the device mount, and the agent's device tree for masters that predate the translation.
 *
 * The one step that could still leave is a `..` after a name (`s/../x`): if `s` is a link to the
 * root (shown as the way to the mount's root), the master's kernel takes that `..` from the
 * mount's root to the master's directory above it, where the slave's stays at its root. Such a
 * target is shown as stored only when the mount has followed it as the master's kernel will and
 * found no `..` taken at the root (`asStored`; mount/symlink-view.ts); here, without the slave's
 * tree, its `..` are resolved lexically (`a/s/../x` shows `a/x`).
 */
import { SlaveError } from './errors.js';

/** The longest target the kernel takes from a FUSE readlink (a page, less the NUL). */
const MAX_TARGET_BYTES = 4095;

function checkLength(linkPath: string, shown: string): string {
  if (Buffer.byteLength(shown) > MAX_TARGET_BYTES) {
    throw new SlaveError('ENAMETOOLONG', `${linkPath}: its target would show as more than ${MAX_TARGET_BYTES} bytes`);
  }
  return shown;
}

/** `/etc/`, `/etc/.`, `..`: a target that names a directory by its end. */
function namesDirectory(parts: string[]): boolean {
  const last = parts[parts.length - 1];
  return last === '' || last === '.' || last === '..';
}

/** Components of a path: `.` and empty ones dropped. */
function components(path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.');
}

/**
 * `from` (components) walked through `path`'s components lexically: `.` and empty ones dropped,
 * `..` taking one off but stopping at `/`, as at the slave's root.
 */
function lexicalWalk(from: string[], path: string): string[] {
  const walked = [...from];
  for (const part of components(path)) {
    if (part === '..') walked.pop();
    else walked.push(part);
  }
  return walked;
}

/** The components of the directory holding the link at `linkPath`, taken lexically. */
export function linkDirectory(linkPath: string): string[] {
  return lexicalWalk([], linkPath).slice(0, -1);
}

/** What following a target lexically from its link's place meets. */
export interface TargetWalk {
  /** A `..` would climb above the root (the slave's kernel stays there; the master's would leave). */
  climbs: boolean;
  /**
   * The slave paths of the names that come before the target's last `..`, in order (empty when
   * its `..` all come first). Where one is a link, the master's kernel may take a later `..`
   * elsewhere than lexically: from the mount's root, out of it.
   */
  namesBeforeDotDot: string[];
}

/** `linkPath`: the link's path from the mount's root, as the kernel names it (canonical, absolute). */
export function targetWalk(linkPath: string, target: string): TargetWalk {
  const parts = components(target);
  const lastDotDot = parts.lastIndexOf('..');
  const walked = target.startsWith('/') ? [] : linkDirectory(linkPath);
  let climbs = false;
  const namesBeforeDotDot: string[] = [];
  parts.forEach((part, i) => {
    if (part === '..') {
      if (walked.length === 0) climbs = true;
      walked.pop();
      return;
    }
    walked.push(part);
    if (i < lastDotDot) namesBeforeDotDot.push(`/${walked.join('/')}`);
  });
  return { climbs, namesBeforeDotDot };
}

/** A target whose steps are all exact as stored: its `..` come first and stay inside. */
function plain(walk: TargetWalk): boolean {
  return !walk.climbs && walk.namesBeforeDotDot.length === 0;
}

/**
 * The target the mount shows, relative to the link, for the link at `linkPath` whose slave-side
 * target is `target`.
 *
 * - A relative target is returned as it is, byte for byte (tools compare readlink's output),
 *   when its `..` all come first and stay at or below the root (the kernel names the link by its
 *   canonical path, so those steps go exactly where they go on the slave), or when `asStored`
 *   says the caller followed it and found that no `..` in it is taken at the root.
 * - An absolute target becomes relative to the link's directory: `/etc/x -> /etc/shadow` shows
 *   `shadow`, `/a/b/l -> /etc/hosts` shows `../../etc/hosts`, `/l -> /` shows `.`; with
 *   `asStored`, one with `..` after names climbs to the root first (`/a/l -> /b/c/..` shows
 *   `../b/c/..`).
 * - A relative target climbing above the root is clamped as the slave's kernel does it
 *   (`/a/l -> ../../../etc` shows `../etc`).
 * - Any other `..` after a name is resolved lexically (`a/s/../x` shows `a/x`; see the top).
 *
 * A target that names a directory by its end (`/etc/`, `/etc/.`, `..`) still does. Whatever is
 * shown cannot leave the mount. A shown target too long for the kernel (an absolute target of a
 * link some thousand directories deep) is ENAMETOOLONG rather than cut short, which could turn a
 * name like `..x` into `..`.
 */
export function shownSymlinkTarget(linkPath: string, target: string, asStored = false): string {
  const absolute = target.startsWith('/');
  const walk = targetWalk(linkPath, target);
  const linkDir = linkDirectory(linkPath);
  if (!absolute && (asStored || plain(walk))) return target;
  if (absolute && asStored && !plain(walk)) {
    // Up to the root exactly (the link's place is canonical), then the target's own steps.
    return checkLength(linkPath, `${'../'.repeat(linkDir.length) || './'}${target.replace(/^\/+/, '')}`);
  }
  const parts = target.split('/');
  const resolved = lexicalWalk(absolute ? [] : linkDir, target);
  let common = 0;
  while (common < resolved.length && common < linkDir.length && resolved[common] === linkDir[common]) common++;
  const steps = [...new Array<string>(linkDir.length - common).fill('..'), ...resolved.slice(common)];
  let shown = steps.length === 0 ? '.' : steps.join('/');
  if (namesDirectory(parts) && steps.length > 0 && steps[steps.length - 1] !== '..') shown += '/';
  return checkLength(linkPath, shown);
}

/**
 * The target the mount shows for the link at `linkPath` whose slave-side target is `target`,
 * where the mount's callers see the slave's root at `seenAt` (absolute, normalised: the
 * mountpoint, or in the sidecar the path the test container sees).
 *
 * - An absolute target is shown under `seenAt`, byte for byte (`/opt/fw/v2` as
 *   `/slave/opt/fw/v2`; `/` as `seenAt` itself), so readlink, realpath and `readlink -f` give
 *   an absolute path that leads into the slave. Its `..` are resolved lexically, stopping at the
 *   root as on the slave, where they climb above it (`/../x`) or come after a name, unless
 *   `asStored` says the caller followed it and found that none is taken at the root.
 * - A relative target is shown as `shownSymlinkTarget` shows it.
 *
 * `seenAt` `/` (a mount placed at the slave's own paths) shows absolute targets as stored.
 */
export function translatedSymlinkTarget(seenAt: string, linkPath: string, target: string, asStored = false): string {
  if (!target.startsWith('/')) return shownSymlinkTarget(linkPath, target, asStored);
  let inside = target;
  if (!asStored && !plain(targetWalk(linkPath, target))) {
    const walked = lexicalWalk([], target);
    inside = `/${walked.join('/')}`;
    if (walked.length > 0 && namesDirectory(target.split('/'))) inside += '/';
  }
  if (seenAt === '/') return checkLength(linkPath, inside);
  return checkLength(linkPath, inside === '/' ? seenAt : `${seenAt}${inside}`);
}

/**
 * What a link made through the mount with target `target` stores on the slave: an absolute
 * target at or under `seenAt` (where the mount's callers see the slave's root) with that prefix
 * replaced by `/`, so the link is valid on the slave itself and `translatedSymlinkTarget` shows
 * it back exactly as written (`seenAt` itself, or `seenAt/`, is stored as `/` and shows as
 * `seenAt`). Any other target, relative or elsewhere, is stored as given.
 */
export function storedSymlinkTarget(seenAt: string, target: string): string {
  if (seenAt === '/' || !target.startsWith(seenAt)) return target;
  const rest = target.slice(seenAt.length);
  if (rest === '') return '/';
  return rest.startsWith('/') ? rest : target;
}
