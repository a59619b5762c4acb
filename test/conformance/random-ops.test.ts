/**
 * Seeded random sequences of filesystem calls (test/fixtures/random-ops.py), on a local directory
 * and on the mount, must print the same transcript, and leave the slave holding the tree the
 * local directory holds. The sequences crowd a few names, several handles of one file, hard links,
 * renames over names, and removals of what is open, while the changes before them are still on
 * their way to the agent. test/fixtures/ordering-ops.py keeps, one block each, the cases such
 * sequences found, so that each stays tested whichever seeds run here.
 */
import { chmod, chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertSameLines } from '../helpers/compare.js';
import { sh } from '../helpers/processes.js';
import { startSlave, type Slave } from '../helpers/slave.js';

const RANDOM_OPS = new URL('../../../test/fixtures/random-ops.py', import.meta.url).pathname;
const ORDERING_OPS = new URL('../../../test/fixtures/ordering-ops.py', import.meta.url).pathname;
/** Seeds whose sequences found a difference once (they stay), and a few more. */
const SEEDS = [2, 19, 26, 28, 30, 31, 35, 40, 46, 103, 160, 162, 170, 176, 191, 224, 1, 3];
const CALLS = 400;
/** Seeds whose sequences found a difference once on a mount with `-o cache=no`. */
const UNCACHED_SEEDS = [2, 28, 32];
/** Seeds whose sequences, made by an ordinary user, found a difference once. */
const UNPRIVILEGED_SEEDS = [4, 23, 32, 37];
const NOBODY = 65534;
/** The system's python3 (which any user may run: a per-user install may not be), as uid NOBODY. */
const AS_NOBODY = `setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups /usr/bin/python3`;

/**
 * Runs `command` (a shell command, given its directory) in a new directory `name` of `local` and
 * of the mount `mnt`, owned by `owner` when given: the two transcripts must agree.
 */
async function sameTranscripts(
  command: (dir: string) => string, local: string, mnt: string, name: string, what: string, owner?: number,
): Promise<void> {
  for (const dir of [join(local, name), join(mnt, name)]) {
    await mkdir(dir);
    if (owner !== undefined) await chown(dir, owner, owner);
  }
  const expected = await sh(command(join(local, name)), { timeoutMs: 60_000 });
  const onMount = await sh(command(join(mnt, name)), { timeoutMs: 120_000 });
  assertSameLines(onMount, expected, what);
}

describe('random call sequences: a local directory and the mount agree', () => {
  let slave: Slave;
  let local: string;

  before(async () => {
    slave = await startSlave();
    local = join(slave.tmp, 'local');
    await mkdir(local);
  });
  after(async () => { await slave?.stop(); });

  for (const seed of SEEDS) {
    it(`seed ${seed}: the same transcript, and the slave holds the same tree`, async () => {
      const name = `seed-${seed}`;
      await sameTranscripts((dir) => `python3 '${RANDOM_OPS}' '${dir}' ${seed} ${CALLS}`, local, slave.mnt, name, `seed ${seed} (mount vs local)`);
      // Everything the program was told is applied on the slave once the mount is synced.
      await sh(`sync '${join(slave.mnt, name)}'`);
      const tree = (dir: string) => sh(`python3 '${RANDOM_OPS}' '${dir}' --tree`, { timeoutMs: 60_000 });
      assertSameLines(await tree(join(slave.root, name)), await tree(join(local, name)), `seed ${seed} (slave vs local tree)`);
    });
  }

  it('the cases the sequences found: listings, handles, links, renames and removed open files', async () => {
    await sameTranscripts((dir) => `python3 '${ORDERING_OPS}' '${dir}'`, local, slave.mnt, 'ordering', 'ordering cases (mount vs local)');
  });
});

describe('random call sequences by an ordinary user: a local directory and the mount agree', () => {
  let slave: Slave;
  let local: string;

  before(async () => {
    // allow_other: the kernel checks the caller's permissions as on the slave (default_permissions).
    slave = await startSlave({ mountArgs: ['-o', 'allow_other'] });
    await chmod(slave.tmp, 0o755);
    await chmod(slave.mnt, 0o755);
    local = join(slave.tmp, 'local');
    await mkdir(local, { mode: 0o755 });
  });
  after(async () => { await slave?.stop(); });

  for (const seed of UNPRIVILEGED_SEEDS) {
    it(`seed ${seed}, as uid ${NOBODY}: the same transcript`, async () => {
      await sameTranscripts((dir) => `${AS_NOBODY} '${RANDOM_OPS}' '${dir}' ${seed} ${CALLS}`, local, slave.mnt, `seed-${seed}`,
        `seed ${seed} as uid ${NOBODY} (mount vs local)`, NOBODY);
    });
  }

  it(`the cases the sequences found, as uid ${NOBODY}`, async () => {
    await sameTranscripts((dir) => `${AS_NOBODY} '${ORDERING_OPS}' '${dir}'`, local, slave.mnt, 'ordering',
      `ordering cases as uid ${NOBODY} (mount vs local)`, NOBODY);
  });
});

describe('random call sequences on a mount with -o cache=no: a local directory and the mount agree', () => {
  let slave: Slave;
  let local: string;

  before(async () => {
    slave = await startSlave({ mountArgs: ['-o', 'cache=no'] });
    local = join(slave.tmp, 'local');
    await mkdir(local);
  });
  after(async () => { await slave?.stop(); });

  for (const seed of UNCACHED_SEEDS) {
    it(`seed ${seed}: the same transcript`, async () => {
      await sameTranscripts((dir) => `python3 '${RANDOM_OPS}' '${dir}' ${seed} ${CALLS}`, local, slave.mnt, `seed-${seed}`,
        `seed ${seed} with cache=no (mount vs local)`);
    });
  }
});
