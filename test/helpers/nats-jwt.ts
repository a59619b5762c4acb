/**
 * NATS decentralized authentication for tests, as `nsc` would set it up: an operator, one
 * account, and users whose JWTs carry subject permissions, written as `.creds` files; and the
 * server configuration that trusts the operator (a memory resolver preloaded with the account).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createAccount, createOperator, createUser } from '@nats-io/nkeys';

export interface UserGrant {
  name: string;
  publish: string[];
  subscribe: string[];
  /** May answer each request it receives once (an agent). */
  respond?: boolean;
}

/** Writes `<dir>/server.conf` and `<dir>/<name>.creds` per user; returns the configuration's path. */
export async function makeJwtAuth(dir: string, users: UserGrant[]): Promise<string> {
  const operator = createOperator();
  const account = createAccount();
  const unlimited = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
  const accountJwt = await encodeAccount('lab', account, { limits: unlimited }, { signer: operator });
  for (const grant of users) {
    const user = createUser();
    const userJwt = await encodeUser(grant.name, user, account, {
      pub: { allow: grant.publish }, sub: { allow: grant.subscribe },
      ...(grant.respond ? { resp: { max: 1, ttl: 0 } } : {}),
      subs: -1, data: -1, payload: -1,
    });
    await writeFile(join(dir, `${grant.name}.creds`), fmtCreds(userJwt, user), { mode: 0o600 });
  }
  const config = join(dir, 'server.conf');
  await writeFile(config, [
    `operator: ${await encodeOperator('lab', operator)}`,
    'resolver: MEMORY',
    `resolver_preload: { ${account.getPublicKey()}: ${accountJwt} }`,
    '',
  ].join('\n'));
  return config;
}
