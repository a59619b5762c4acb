/**
 * Inputs made once on the local disk, untimed: the random file the write test copies, the
 * tarball of npm's own package dir, and an empty HOME with a git identity for the git tests.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { runCommand, sh } from './run-command.js';

export interface Fixtures {
  workDir: string;
  randomFile: string;
  sizeBytes: number;
  tarball: string;
  /** Lines of `tar tf`: every file, directory and link in it. */
  tarEntries: number;
  /** HOME for git: a fixed identity, no user or system config. */
  gitEnv: NodeJS.ProcessEnv;
}

export class FixtureError extends Error {
  override name = 'FixtureError';
}

async function npmPackageDir(): Promise<string> {
  const { stdout } = await runCommand('npm root -g', { timeoutMs: 30_000 });
  return join(stdout.trim(), 'npm');
}

export async function makeFixtures(workDir: string, sizeMb: number): Promise<Fixtures> {
  const dir = join(workDir, 'fixtures');
  await mkdir(dir);
  const randomFile = join(dir, 'random.bin');
  await runCommand(`head -c ${sizeMb}M /dev/urandom > ${sh(randomFile)}`, { timeoutMs: 120_000 });

  const npmDir = await npmPackageDir();
  const tarball = join(dir, 'npm.tar');
  await runCommand(`tar cf ${sh(tarball)} -C ${sh(dirname(npmDir))} ${sh(basename(npmDir))}`, { timeoutMs: 120_000 });
  const { stdout } = await runCommand(`tar tf ${sh(tarball)} | wc -l`, { timeoutMs: 30_000 });
  const tarEntries = Number(stdout.trim());
  if (!(tarEntries > 0)) throw new FixtureError(`tarball of ${npmDir} is empty`);
  // Written back now, untimed: left dirty, the kernel wrote the random file's 256 MiB back during
  // the first timed sequential write (on the same disk as the slave's), whichever target had it:
  // by hand, 333 MB/s through the mount right after making it, 389 after a sync. The stream
  // part's first pass: 35 % of the floor before, 45 % with this (its next two 77-93 %).
  await runCommand(`sync ${sh(randomFile)} ${sh(tarball)}`, { timeoutMs: 120_000 });

  const home = join(dir, 'home');
  await mkdir(home);
  await writeFile(join(home, '.gitconfig'), [
    '[user]', '\tname = splitbrain bench', '\temail = bench@splitbrain.invalid',
    '[init]', '\tdefaultBranch = main',
    // Files on a mount may show another owner than the one running git.
    '[safe]', '\tdirectory = *',
    '',
  ].join('\n'));
  const gitEnv = { ...process.env, HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' };
  return { workDir, randomFile, sizeBytes: sizeMb * 1024 * 1024, tarball, tarEntries, gitEnv };
}
