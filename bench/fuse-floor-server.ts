/**
 * The serving side of the FUSE floor, a process of its own as `splitbrain mount -f` is (a
 * FUSE server must never share a process with a program doing synchronous I/O on its mount):
 * `node fuse-floor-server.js <mount-path> [<mount -o options>]`. Serves a NullFs through
 * splitbrain's FuseAdapter with the kernel options and timeouts `splitbrain mount -o <options>` would use,
 * reports its start as cli/start-report.ts describes, and unmounts on SIGTERM or SIGINT.
 */
import { pino } from 'pino';
import { reportStart } from '../cli/start-report.js';
import { FuseAdapter, MAX_TRANSFER } from '../mount/fuse-adapter.js';
import { parseMountOptions } from '../mount/mount-options.js';
import { PATH_MAX } from '../protocol/index.js';
import { NullFs } from './null-fs.js';

/** Shows in /proc/mounts as fsname=splitbrain:fuse-floor. */
const FSNAME_ID = 'fuse-floor';

const [mountPath, options = ''] = process.argv.slice(2);
if (!mountPath) {
  process.stderr.write('usage: fuse-floor-server.js <mount-path> [<mount -o options>]\n');
  process.exit(2);
}

const log = pino({ level: 'warn' });
const nullFs = new NullFs();
let adapter: FuseAdapter;
try {
  const tuning = parseMountOptions(options ? [options] : [], FSNAME_ID);
  adapter = new FuseAdapter(nullFs, {
    mountPath, kernelOptions: tuning.kernelOptions, timeouts: tuning.kernel, directIo: false, kernelChecks: tuning.kernelChecks, maxTransfer: MAX_TRANSFER, maxPath: PATH_MAX,
    pageCacheFollowsAttrs: true, // no change feed here
  }, log);
  await adapter.mount();
} catch (err) {
  reportStart(err as Error);
  process.exit(1);
}
reportStart();

// The mount keeps the process running until we unmount.
const stop = () => {
  void adapter.unmount()
    .catch((err: unknown) => log.warn({ err }, 'unmount reported an error'))
    .finally(() => {
      process.stderr.write(`fuse floor served ${JSON.stringify(nullFs.tally)}\n`);
      process.exit(0);
    });
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
