/**
 * The FUSE floor: the two sequential workloads on a null filesystem served through the
 * same FUSE binding, adapter and libfuse options as splitbrain's mount, with no network and no
 * disk behind it. Splitbrain's share of it is what the protocol, the bus and the agent leave of
 * what FUSE in Node allows. The same for metadata: cold `find -ls` and `rm -rf` of as many
 * files as the untar makes entries (the null filesystem is one flat directory), which is what
 * the kernel operations of those workloads cost through our FUSE binding with nothing behind them.
 */
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cleanup } from './cleanup.js';
import { DaemonStartError, logTail, readyReport, startDaemon } from './daemon.js';
import type { Fixtures } from './fixtures.js';
import { sequentialCommands } from './fs-workloads.js';
import { isMounted } from './mount-table.js';
import { goCold } from './page-cache.js';
import { runCommand, sh } from './run-command.js';
import { unmountOnCleanup } from './target.js';

const SERVER = fileURLToPath(new URL('./fuse-floor-server.js', import.meta.url));
const START_TIMEOUT_MS = 15_000;

export class FuseFloorCheckError extends Error {
  override name = 'FuseFloorCheckError';
}

export interface FuseFloorResult {
  /** One per run, MB/s (10^6 bytes). */
  writeMBps: number[];
  readMBps: number[];
  /** One per run, seconds: `find -ls` and `rm -rf` of `entries` files. */
  findS: number[];
  rmS: number[];
  entries: number;
}

/** Makes `count` empty files in `dir`, untimed (python: touch would also set times, ENOSYS here). */
function makeFilesCommand(dir: string, count: number): string {
  return `python3 -c 'import os, sys\nfor i in range(int(sys.argv[2])): open(os.path.join(sys.argv[1], "f%d" % i), "wb").close()' `
    + `${sh(dir)} ${count}`;
}

/** `mountOptions`: splitbrain's `-o` options, so the floor gets the same libfuse options. */
export async function measureFuseFloor(
  workDir: string, fixtures: Fixtures, mountOptions: string, runs: number, cleanup: Cleanup,
  progress: (line: string) => void,
): Promise<FuseFloorResult> {
  const mountPath = join(workDir, 'fuse-floor-mnt');
  await mkdir(mountPath);
  const server = startDaemon({
    label: 'FUSE floor', command: process.execPath, logPath: join(workDir, 'fuse-floor.log'),
    args: [SERVER, mountPath, mountOptions], readyPipe: true,
  }, cleanup);
  unmountOnCleanup(cleanup, mountPath);
  try {
    const report = await readyReport(server, START_TIMEOUT_MS);
    if (!report.ok) {
      throw new DaemonStartError(`FUSE floor did not start: ${report.message}: ${await logTail(server)}`);
    }
    if (!(await isMounted(mountPath))) throw new DaemonStartError(`FUSE floor said ready but ${mountPath} is not mounted`);

    const seq = sequentialCommands(fixtures, mountPath);
    const mb = fixtures.sizeBytes / 1e6;
    const entries = fixtures.tarEntries;
    const result: FuseFloorResult = { writeMBps: [], readMBps: [], findS: [], rmS: [], entries };
    for (let run = 1; run <= runs; run++) {
      await runCommand(seq.prepareWrite, { timeoutMs: seq.timeoutMs });
      const written = await runCommand(seq.write, { timeoutMs: seq.timeoutMs });
      if (run === 1) {
        const size = (await stat(seq.big)).size;
        if (size !== fixtures.sizeBytes) throw new FuseFloorCheckError(`written file has size ${size}, expected ${fixtures.sizeBytes}`);
      }
      // The null filesystem keeps nothing in its own memory: dropping the kernel's caches is enough.
      await goCold(0);
      const read = await runCommand(seq.read, { timeoutMs: seq.timeoutMs });
      if (run === 1) {
        // Zeros up to the size, and not a byte more or less.
        await runCommand(`cmp -n ${fixtures.sizeBytes} ${sh(seq.big)} /dev/zero && test "$(wc -c < ${sh(seq.big)})" -eq ${fixtures.sizeBytes}`,
          { timeoutMs: seq.timeoutMs });
      }
      await runCommand(`rm -f ${sh(seq.big)}`, { timeoutMs: seq.timeoutMs });
      result.writeMBps.push(mb / (written.ms / 1000));
      result.readMBps.push(mb / (read.ms / 1000));

      await runCommand(makeFilesCommand(mountPath, entries), { timeoutMs: seq.timeoutMs });
      await goCold(0);
      const find = await runCommand(`find ${sh(mountPath)} -ls > /dev/null`, { timeoutMs: seq.timeoutMs });
      await goCold(0);
      const rm = await runCommand(`rm -rf ${sh(mountPath)}/*`, { timeoutMs: seq.timeoutMs });
      const left = (await runCommand(`ls -A ${sh(mountPath)} | wc -l`, { timeoutMs: seq.timeoutMs })).stdout.trim();
      if (left !== '0') throw new FuseFloorCheckError(`rm -rf left ${left} entries on the null filesystem`);
      result.findS.push(find.ms / 1000);
      result.rmS.push(rm.ms / 1000);
      progress(`[pass ${run}/${runs}] fuse floor write ${result.writeMBps.at(-1)?.toFixed(0)} MB/s, `
        + `read ${result.readMBps.at(-1)?.toFixed(0)} MB/s, find -ls ${result.findS.at(-1)?.toFixed(2)} s, `
        + `rm -rf ${result.rmS.at(-1)?.toFixed(2)} s (${entries} files)`);
    }
    return result;
  } finally {
    // It unmounts itself on SIGTERM; the cleanup's lazy unmount is there if it cannot.
    await server.stop();
  }
}
