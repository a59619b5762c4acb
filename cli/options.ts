/**
 * What several commands take: argument parsers, the options every bus command shares (NATS
 * credentials, log level, metrics, slave wait), and settings read from the environment (compose
 * sets them) and from package.json (the version).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { isValidAgentId } from '../protocol/index.js';
import type { LinkSetting } from '../agent/links.js';
import { ExecUserError, parseExecUser, type ExecUser } from '../sidecar/exec-user.js';
import { AUTH_ENV } from '../transport/bus-auth.js';
import { LOG_LEVELS } from './logger.js';

export const DEFAULT_NATS = 'nats://127.0.0.1:4222';
/** Every command reaches the bus this way: one server, or a cluster's (any one will do, and the next when it goes). */
export const NATS_URL_HELP = 'NATS server URL, e.g. nats://lab-box-7:4222, or several separated by commas (a cluster: '
  + 'any one will do, and another when it goes away)';

/** Our version, from the package.json beside dist/ (in the images too). */
export const VERSION = ((): string => {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    const version = (pkg as { version?: unknown }).version;
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
})();

export function agentId(value: string): string {
  if (!isValidAgentId(value)) {
    throw new InvalidArgumentError('use letters, digits, - and _ (at most 128, not first), no dots or wildcards');
  }
  return value;
}

export function nonNegative(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new InvalidArgumentError('expected a number (0 or more)');
  return n;
}

/** A number of seconds up to a day, fractions too; NaN for anything else (a blank is not 0). */
function secondsOf(value: string): number {
  const n = Number(value);
  return value.trim() !== '' && Number.isFinite(n) && n <= 86_400 ? n : Number.NaN;
}

/** Seconds, fractions too, 0 allowed (the caller says what 0 means). */
export function seconds(value: string): number {
  const n = secondsOf(value);
  if (!(n >= 0)) throw new InvalidArgumentError('expected seconds (0 or more)');
  return n;
}

/** Seconds, fractions too, more than 0. */
export function positiveSeconds(value: string): number {
  const n = secondsOf(value);
  if (!(n > 0)) throw new InvalidArgumentError('expected seconds (more than 0)');
  return n;
}

/** A size in bytes: a whole number, or one with K, M or G (KiB, MiB, GiB); at least 1 MiB. */
export function byteSize(value: string): number {
  const m = /^(\d+)([KMG]?)(i?B)?$/i.exec(value.trim());
  const scale = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m?.[2] ?? '').toUpperCase()] ?? 1;
  const n = m ? Number(m[1]) * scale : NaN;
  if (!Number.isSafeInteger(n) || n < 1024 * 1024) throw new InvalidArgumentError('expected a size of 1M or more, such as 256M or 2G');
  return n;
}

/** HOST, HOST:PORT or [IPv6]:PORT (port 0 or none: 0), or undefined when it is none of them. */
function hostPort(value: string): { host: string; port: number } | undefined {
  const m = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(value) ?? /^([^:\s]+)(?::(\d+))?$/.exec(value) ?? /^([0-9A-Fa-f:]+:[0-9A-Fa-f:.]*)()$/.exec(value);
  const port = Number(m?.[2] || 0);
  if (!m || !m[1] || !Number.isInteger(port) || port > 0xffff) return undefined;
  return { host: m[1], port };
}

/** --link: auto, off, or where to listen (HOST, HOST:PORT, [IPv6]:PORT; port 0 or none: any free one). */
export function linkSetting(value: string): LinkSetting {
  if (value === 'auto' || value === 'off') return value;
  const where = hostPort(value);
  if (!where) throw new InvalidArgumentError('expected auto, off, or an address to listen on: HOST, HOST:PORT or [IPv6]:PORT');
  return where;
}

/** --link-offer: HOST:PORT or [IPv6]:PORT, a port given. */
export function linkAddress(value: string): { host: string; port: number } {
  const where = hostPort(value);
  if (!where || where.port === 0) throw new InvalidArgumentError('expected HOST:PORT or [IPv6]:PORT');
  return where;
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** An environment variable's value; unset and empty are the same (compose passes empty ones). */
export function fromEnv(name: string): string | undefined {
  const value = process.env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

/** SPLITBRAIN_AGENT as an agent id (compose's way to set --id and --agent), checked. */
export function agentIdFromEnv(): string | undefined {
  const value = fromEnv('SPLITBRAIN_AGENT');
  return value === undefined ? undefined : agentId(value);
}

export function listFromEnv(name: string): string[] {
  return (fromEnv(name) ?? '').split(/[\s,]+/).filter((word) => word !== '');
}

/** A yes/no variable of a compose file: 1, true or yes (any case) is yes. */
export function envFlag(name: string): boolean {
  return /^(1|true|yes)$/i.test(fromEnv(name) ?? '');
}

export const slaveWait = () => new Option('--slave-wait <seconds>',
  'how long an operation waits for an unreachable slave before it fails (EIO; a process: exit 255); 0: at once')
  .argParser(nonNegative).default(60);

/**
 * The NATS credentials and TLS options every command that talks to the bus takes. They go into
 * the environment (transport/bus-auth.ts), where the bus and every process we start find them;
 * secrets are better given there directly than on a command line others can read.
 */
export function withBusAuth(command: Command): Command {
  const files = new Set(['creds', 'tlsCa', 'tlsCert', 'tlsKey']);
  return command
    .option('--creds <file>', 'NATS credentials file (user JWT and nkey seed) [$SPLITBRAIN_NATS_CREDS]')
    .option('--user <name>', 'NATS user [$SPLITBRAIN_NATS_USER]')
    .option('--password <password>', 'NATS password (prefer $SPLITBRAIN_NATS_PASSWORD: a command line is visible to others)')
    .option('--token <token>', 'NATS token (prefer $SPLITBRAIN_NATS_TOKEN)')
    .option('--tls-ca <file>', 'CA certificate the NATS server\'s must chain to (TLS) [$SPLITBRAIN_NATS_TLS_CA]')
    .option('--tls-cert <file>', 'client certificate, for servers that verify clients [$SPLITBRAIN_NATS_TLS_CERT]')
    .option('--tls-key <file>', 'the client certificate\'s key [$SPLITBRAIN_NATS_TLS_KEY]')
    .option('--inbox-prefix <prefix>', 'subject prefix for replies, as the server grants this user (e.g. _INBOX_alice) [$SPLITBRAIN_NATS_INBOX_PREFIX]')
    .hook('preAction', (_program, action) => {
      const given = action.opts<Record<string, unknown>>();
      for (const [key, name] of Object.entries(AUTH_ENV)) {
        const value = given[key];
        if (typeof value === 'string') process.env[name] = files.has(key) ? resolve(value) : value;
      }
    });
}

/** `--exec-user`'s value (or `where`'s, an environment variable), checked: misuse (2) if wrong. */
export function execUserArg(value: string, where?: string): ExecUser {
  try {
    return parseExecUser(value);
  } catch (err) {
    if (!(err instanceof ExecUserError)) throw err;
    throw new InvalidArgumentError(where === undefined ? err.message : `${where}: ${err.message}`);
  }
}

export const execUser = () => new Option('--exec-user <who>',
  'who bridged commands run as on the slave (a root agent): caller (the shim\'s uid, gid and groups; root stays root), '
  + 'agent (the agent\'s user), or UID[:GID] (GID default: UID)')
  .argParser((value: string) => execUserArg(value)).default(parseExecUser('caller'), 'caller');

export const metrics = () => new Option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics');

export const logLevel = () => new Option('--log-level <level>', 'log verbosity').choices(LOG_LEVELS).default('warn');
