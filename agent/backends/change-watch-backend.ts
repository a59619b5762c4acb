/**
 * What the change feed (agent/watch/) asks of the slave's operating system: a watcher that
 * reports the changes made under the export root, by whatever process, in the directories the
 * feed names (or in the whole filesystem, where the platform can). Which directories, the
 * feed's numbering, losses and restarts stay in agent/watch/; the watching is here. Events
 * carry inotify(7)'s bits (agent/watch/change-kinds.ts says what they mean): another
 * platform's watcher speaks them too. One implementation per platform (linux/linux-change-watch.ts).
 */
import type { Logger } from 'pino';

/** auto: the whole filesystem where the kernel and the agent's privileges allow (fanotify), else per directory. */
export type WatchMode = 'auto' | 'inotify';
export const WATCH_MODES: readonly WatchMode[] = ['auto', 'inotify'];

export interface WatcherListener {
  /** One event in a watched directory (wd -1: a queue overflowed); `name` '' for the directory itself. */
  event(wd: number, mask: number, name: Buffer): void;
  /** One event of the whole filesystem: slave directory and name as bytes ('' the directory
   * itself), and the process that made the change (0: not known). */
  dirEvent(mask: number, dir: Buffer, name: Buffer, pid: number): void;
  /** The events of one read have been handed over: a batch may be sent. */
  turn(): void;
  /** The watcher is gone; the feed starts another. */
  died(reason: string): void;
}

export interface Watcher {
  /**
   * Watches the directory at `hostPath`: its watch descriptor, 0 when the whole filesystem's
   * watch reports it under that path, or -errno. `perDirectory`: a watch of its own even then
   * (the slave path reaches it through a symlink, so it would be reported under another path).
   */
  add(hostPath: string, perDirectory?: boolean): Promise<number>;
  remove(wd: number): void;
  /** Resolves once every event queued before now has been handed to the listener. */
  sync(): Promise<void>;
  /** Drops every watch and queued event; resolves once done. */
  reset(): Promise<void>;
  /** The watcher's process, where it is one (logs, tests). */
  readonly pid: number | undefined;
  /** Ends the watcher; the listener is not told. */
  stop(): void;
}

export interface WatchStart {
  /** The export root's host path. */
  hostRoot: string;
  mode: WatchMode;
  /** The watcher program to run instead of the one built with the agent (--watch-helper). */
  program?: string;
  log: Logger;
}

export interface ChangeWatchBackend {
  /** How many directories this user may watch one by one, where the platform says (the feed takes a share). */
  perDirectoryLimit(): Promise<number | undefined>;
  /** Resolves once the watcher watches: the mode it got ('fanotify' or 'inotify'), and why not the whole filesystem. */
  start(options: WatchStart, listener: WatcherListener): Promise<{ watcher: Watcher; mode: string; why?: string }>;
}
