/**
 * Finds the executable a spawn will run, as execvp(3) would on the slave, before spawning: so a
 * missing command is ENOENT and a non-executable one EACCES in the spawn's reply (pipes and
 * ptys alike), and the master can exit 127 or 126 with the slave's answer, as a shell does.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { posix } from 'node:path';
import { SlaveError } from '../../../protocol/index.js';

/** execvp's default when PATH is unset. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function executableAt(path: string): 'yes' | 'missing' | 'denied' {
  try {
    if (!statSync(path).isFile()) return 'denied';
    accessSync(path, constants.X_OK);
    return 'yes';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : 'denied';
  }
}

/**
 * The path of `command` (a name looked up on `searchPath`, or a path relative to `cwd`). With
 * `hostPath`, paths are the slave's and checked where `hostPath` puts them (an agent whose
 * export root is another machine's /); the slave's path is returned.
 */
export function resolveCommand(command: string, searchPath: string, cwd: string, hostPath = (p: string) => p): string {
  const executable = (path: string) => {
    try {
      return executableAt(hostPath(path));
    } catch {
      return 'missing'; // a path the export root cannot hold
    }
  };
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
