/**
 * What one inotify event means to masters: the changes to publish (protocol/changes.ts), and
 * whether the watch has ended. Pure, so every mask is unit tested without a kernel.
 */
import { posix } from 'node:path';
import type { SlaveChangeTuple } from '../../protocol/index.js';

/** inotify(7)'s bits (fanotify's FAN_* share the values). */
export const IN = {
  MODIFY: 0x2, ATTRIB: 0x4, CLOSE_WRITE: 0x8, MOVED_FROM: 0x40, MOVED_TO: 0x80, CREATE: 0x100,
  DELETE: 0x200, DELETE_SELF: 0x400, MOVE_SELF: 0x800, UNMOUNT: 0x2000, Q_OVERFLOW: 0x4000,
  IGNORED: 0x8000,
} as const;

/** The name now means another inode, or none. */
const ENTRY = IN.CREATE | IN.DELETE | IN.MOVED_FROM | IN.MOVED_TO;
/** Same inode; its attributes or data changed. */
const ATTR = IN.ATTRIB | IN.MODIFY | IN.CLOSE_WRITE;
/** The watched directory itself went away or moved: its slave path no longer names it. */
const GONE = IN.DELETE_SELF | IN.MOVE_SELF | IN.UNMOUNT | IN.IGNORED;

export interface EventMeaning {
  changes: SlaveChangeTuple[];
  /** The watch is over (the kernel dropped it, or its path no longer names its directory). */
  ended: boolean;
}

/** The directory's own entry: in its parent, or (the export root) the root's own attributes. */
function self(dir: string, kind: 'entry' | 'attr'): SlaveChangeTuple {
  if (dir === '/') return ['/', null, kind];
  return [posix.dirname(dir), posix.basename(dir), kind];
}

/**
 * `dir`: the slave path the watch was made for; `name`: the event's name ('' for the directory
 * itself).
 */
export function meaningOf(dir: string, mask: number, name: string): EventMeaning {
  if (name !== '') {
    if (mask & ENTRY) return { changes: [[dir, name, 'entry']], ended: false };
    if (mask & ATTR) return { changes: [[dir, name, 'attr']], ended: false };
    return { changes: [], ended: false };
  }
  if (mask & GONE) {
    // Everything cached under the old path is wrong now; the parent's own watch (if any) reports
    // the name too, but it may not be watched.
    const changes: SlaveChangeTuple[] = [[dir, null, 'entry']];
    if (dir !== '/' && !(mask & IN.IGNORED)) changes.unshift(self(dir, 'entry'));
    return { changes, ended: true };
  }
  if (mask & ATTR) return { changes: [self(dir, 'attr')], ended: false };
  return { changes: [], ended: false };
}
