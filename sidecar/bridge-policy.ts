/**
 * What of the master's side crosses to the slave with a bridged command: the working directory,
 * translated from the slave mount's path to the slave's own, and the environment variables the
 * policy allows (never PATH: the slave finds its commands on its own PATH).
 */
import { posix } from 'node:path';

export interface BridgePolicyOptions {
  /** Where the test sees the slave's root (the slave mount), e.g. /slave; none: no translation. */
  slaveMount?: string;
  /** The slave directory for a command run from anywhere else. */
  defaultCwd: string;
  /** Variables that cross by name. */
  envNames: string[];
  /** Variables whose name starts with one of these cross too. */
  envPrefixes: string[];
}

/** Locale, terminal and time zone: what ssh's default SendEnv and a pty session carry. */
export const DEFAULT_ENV_NAMES = ['LANG', 'LANGUAGE', 'TERM', 'COLORTERM', 'TZ'];
export const DEFAULT_ENV_PREFIXES = ['LC_'];

export class BridgePolicy {
  private readonly slaveMount: string | undefined;
  private readonly names: Set<string>;

  constructor(private readonly options: BridgePolicyOptions) {
    this.slaveMount = options.slaveMount === undefined ? undefined : posix.resolve(options.slaveMount);
    this.names = new Set(options.envNames);
  }

  /** The slave directory a command started in master directory `cwd` runs in. */
  slaveCwd(cwd: string): string {
    const normal = posix.resolve('/', cwd);
    const mount = this.slaveMount;
    if (mount === undefined) return this.options.defaultCwd;
    if (normal === mount) return '/';
    if (mount === '/') return normal;
    if (normal.startsWith(`${mount}/`)) return normal.slice(mount.length);
    return this.options.defaultCwd;
  }

  /** The allowed part of a `NAME=value` list. */
  environment(entries: string[]): Record<string, string> {
    const env: Record<string, string> = {};
    for (const entry of entries) {
      const at = entry.indexOf('=');
      if (at <= 0) continue;
      const name = entry.slice(0, at);
      if (name === 'PATH') continue;
      if (this.names.has(name) || this.options.envPrefixes.some((p) => name.startsWith(p))) env[name] = entry.slice(at + 1);
    }
    return env;
  }
}
