/**
 * The change watch on Linux: splitbrain-watch (watcher/splitbrain-watch.c), a static C program
 * over fanotify and inotify, run as the agent's child (watch-helper.ts).
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ChangeWatchBackend } from '../change-watch-backend.js';
import { WatchHelper } from './watch-helper.js';

/** Built by `npm run build` (watcher/Makefile) next to this file's compiled form. */
const WATCHER = fileURLToPath(new URL('./splitbrain-watch', import.meta.url));

export function linuxChangeWatch(): ChangeWatchBackend {
  return {
    perDirectoryLimit: async () => {
      const text = await readFile('/proc/sys/fs/inotify/max_user_watches', 'utf8').catch(() => '');
      return Number.parseInt(text, 10) || undefined;
    },
    start: async ({ hostRoot, mode, program, log }, listener) => {
      const { helper, ...said } = await WatchHelper.start(program ?? WATCHER, hostRoot, mode, listener, log);
      return { watcher: helper, ...said };
    },
  };
}
