/**
 * Which commands masters may run on this slave, independent of the bus's permissions: every
 * command (the default), none (`--no-exec`), or those matching `--exec-allow` globs. A glob
 * with a `/` is matched against the command's path on the slave as resolved on its PATH
 * (`/usr/bin/*`), one without against its name (`systemctl`); `*` and `?` stay within one
 * path component. A refused spawn is EACCES, which the master reports as exit status 126.
 */
import { posix } from 'node:path';
import { globFilter } from '../path-globs.js';

export type ExecPolicy = 'all' | 'none' | string[];

export function execAllowed(policy: ExecPolicy, slaveFile: string): boolean {
  if (policy === 'all') return true;
  if (policy === 'none') return false;
  const byPath = globFilter(policy.filter((g) => g.includes('/')));
  const byName = globFilter(policy.filter((g) => !g.includes('/')));
  return byPath(slaveFile) || byName(posix.basename(slaveFile));
}
