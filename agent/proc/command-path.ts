/**
 * Finds the executable a spawn will run, as execvp(3) would on the slave, before spawning: so a
 * missing command is ENOENT and a non-executable one EACCES in the spawn's reply (pipes and
 * ptys alike), and the master can exit 127 or 126 with the slave's answer, as a shell does.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { posix } from 'node:path';
import { SlaveError } from '../../protocol/index.js';

/** execvp's default when PATH is unset. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function executable(path: string): 'yes' | 'missing' | 'denied' {
  try {
    if (!statSync(path).isFile()) return 'denied';
    accessSync(path, constants.X_OK);
    return 'yes';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : 'denied';
  }
}

/** The host path of `command` (a name looked up on `searchPath`, or a path relative to `cwd`). */
export function resolveCommand(command: string, searchPath: string, cwd: string): string {
  if (command.includes('/')) {
    const path = posix.resolve(cwd, command);
    const found = executable(path);
    if (found === 'yes') return path;
    if (found === 'missing') throw new SlaveError('ENOENT', `${command}: No such file or directory`);
    throw new SlaveError('EACCES', `${command}: Permission denied`);
  }
  let denied = false;
  for (const dir of searchPath.split(':')) {
    const found = executable(posix.join(dir === '' ? cwd : posix.resolve(cwd, dir), command));
    if (found === 'yes') return posix.join(dir === '' ? cwd : posix.resolve(cwd, dir), command);
    if (found === 'denied') denied = true;
  }
  if (denied) throw new SlaveError('EACCES', `${command}: Permission denied`);
  throw new SlaveError('ENOENT', `${command}: command not found`);
}
