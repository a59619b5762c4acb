/**
 * How we prove ourselves to the NATS server, and how we make sure we talk to the right one: the
 * mechanisms NATS users already know (a credentials file with a JWT and nkey, a user and
 * password, a token) and TLS with a CA, a client certificate and key; and the inbox prefix a
 * server that keeps users' replies apart grants this user. Every command takes them
 * as options (cli/main.ts), which set these environment variables, so that the processes a
 * command starts (the device mount, the background mount) and containers get the same. The
 * values are secrets: nothing here logs them.
 */
import { readFileSync } from 'node:fs';
import { credsAuthenticator, type ConnectionOptions } from 'nats';

export const AUTH_ENV = {
  creds: 'SPLITBRAIN_NATS_CREDS',
  user: 'SPLITBRAIN_NATS_USER',
  password: 'SPLITBRAIN_NATS_PASSWORD',
  token: 'SPLITBRAIN_NATS_TOKEN',
  tlsCa: 'SPLITBRAIN_NATS_TLS_CA',
  tlsCert: 'SPLITBRAIN_NATS_TLS_CERT',
  tlsKey: 'SPLITBRAIN_NATS_TLS_KEY',
  inboxPrefix: 'SPLITBRAIN_NATS_INBOX_PREFIX',
} as const;

/** One or more NATS subject tokens: no wildcards, no empty tokens. */
const INBOX_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export type BusAuth = Partial<Record<keyof typeof AUTH_ENV, string>>;

/** The settings in `env` (empty values count as unset). */
export function busAuthFromEnv(env: NodeJS.ProcessEnv = process.env): BusAuth {
  const auth: BusAuth = {};
  for (const [key, name] of Object.entries(AUTH_ENV) as [keyof BusAuth, string][]) {
    const value = env[name];
    if (value !== undefined && value !== '') auth[key] = value;
  }
  return auth;
}

/** nats.js connection options for `auth`; a file that cannot be read is a clear error. */
export function natsAuthOptions(auth: BusAuth): Partial<ConnectionOptions> {
  const options: Partial<ConnectionOptions> = {};
  if (auth.creds !== undefined) options.authenticator = credsAuthenticator(readSecret(auth.creds, 'credentials'));
  if (auth.user !== undefined) options.user = auth.user;
  if (auth.password !== undefined) options.pass = auth.password;
  if (auth.token !== undefined) options.token = auth.token;
  if (auth.inboxPrefix !== undefined) {
    if (!INBOX_PREFIX.test(auth.inboxPrefix)) {
      throw new Error(`inbox prefix ${auth.inboxPrefix}: use subject tokens of letters, digits, - and _, separated by dots`);
    }
    options.inboxPrefix = auth.inboxPrefix;
  }
  if (auth.tlsCa !== undefined || auth.tlsCert !== undefined || auth.tlsKey !== undefined) {
    if ((auth.tlsCert === undefined) !== (auth.tlsKey === undefined)) {
      throw new Error('TLS: give both the client certificate (--tls-cert) and its key (--tls-key), or neither');
    }
    for (const [what, file] of [['CA', auth.tlsCa], ['certificate', auth.tlsCert], ['key', auth.tlsKey]] as const) {
      if (file !== undefined) readSecret(file, `TLS ${what}`);
    }
    options.tls = { caFile: auth.tlsCa, certFile: auth.tlsCert, keyFile: auth.tlsKey };
  }
  return options;
}

function readSecret(file: string, what: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}
