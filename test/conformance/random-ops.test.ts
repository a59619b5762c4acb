/**
 * Seeded random sequences of filesystem calls (test/fixtures/random-ops.py), on a local directory
 * and on the mount, must print the same transcript, and leave the slave holding the tree the
 * local directory holds. The sequences crowd a few names, several handles of one file, hard links,
 * renames over names, and removals of what is open, while the changes before them are still on
 * their way to the agent. test/fixtures/ordering-ops.py keeps, one block each, the cases such
 * sequences found, so that each stays tested whichever seeds run here.
 */
import { mkdir } from 'node:fs/promises';
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
      await mkdir(join(local, name));
      await mkdir(join(slave.mnt, name));
      const expected = await sh(`python3 '${RANDOM_OPS}' '${join(local, name)}' ${seed} ${CALLS}`, { timeoutMs: 60_000 });
      const onMount = await sh(`python3 '${RANDOM_OPS}' '${join(slave.mnt, name)}' ${seed} ${CALLS}`, { timeoutMs: 120_000 });
      assertSameLines(onMount, expected, `seed ${seed} (mount vs local)`);
      // Everything the program was told is applied on the slave once the mount is synced.
      await sh(`sync '${join(slave.mnt, name)}'`);
      const tree = (dir: string) => sh(`python3 '${RANDOM_OPS}' '${dir}' --tree`, { timeoutMs: 60_000 });
      assertSameLines(await tree(join(slave.root, name)), await tree(join(local, name)), `seed ${seed} (slave vs local tree)`);
    });
  }

  it('the cases the sequences found: listings, handles, links, renames and removed open files', async () => {
    await mkdir(join(local, 'ordering'));
    await mkdir(join(slave.mnt, 'ordering'));
    const expected = await sh(`python3 '${ORDERING_OPS}' '${join(local, 'ordering')}'`, { timeoutMs: 60_000 });
    const onMount = await sh(`python3 '${ORDERING_OPS}' '${join(slave.mnt, 'ordering')}'`, { timeoutMs: 120_000 });
    assertSameLines(onMount, expected, 'ordering cases (mount vs local)');
  });
});
