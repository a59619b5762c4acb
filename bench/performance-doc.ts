/**
 * Regenerates docs/performance.md: the fixed intro and the latest results are rewritten, and
 * everything from the `## Notes` heading on, written by hand, is kept as it is.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export const PERFORMANCE_DOC = fileURLToPath(new URL('../../docs/performance.md', import.meta.url));
const NOTES_HEADING = '## Notes';

const INTRO = `# Performance

How fast the splitbrain mount is next to sshfs (the tool it replaces), bindfs (FUSE with no
network: the cost of FUSE alone), the local disk, and the raw NATS transport it runs on.

Reproduce with \`npm run build && npm run bench\` (as root: the cold tests drop the kernel's
caches). \`BENCH_RUNS\` (default 3) sets how many times each workload runs, the median is
reported; \`BENCH_SIZE_MB\` (default 256) sets the size of the sequential tests;
\`BENCH_SPLITBRAIN_OPTS\` passes \`-o\` options to \`splitbrain mount\`. Everything runs on
loopback on one machine: a nats-server, \`splitbrain agent\` and \`splitbrain mount\`, a
throwaway sshd on 127.0.0.1 with sshfs (default options), bindfs, and a plain directory.
The code is in \`bench/\`; everything above the Notes heading is rewritten by each run.

## Workloads

Each is one real program, timed by wall clock from spawn to exit; preparation is untimed.

- **Sequential write**: \`dd if=<random file on the local disk> of=TARGET/big bs=1M conv=fsync\`
  (the source is read once beforehand so it comes from the page cache).
- **Cold sequential read**: \`dd if=TARGET/big of=/dev/null bs=1M\`.
- **Untar**: \`tar xf npm.tar -C TARGET/tree\`, a tarball of npm's own package dir
  (\`$(npm root -g)/npm\`), run as root, so tar also restores owners and modes.
- **Cold \`find -ls\`**: \`find TARGET/tree -ls > /dev/null\` after the untar.
- **git**: \`git init\` (untimed), then \`git add -A && git commit -q -m x\` timed, then a cold
  \`git status --porcelain\` (its output must be empty).
- **rm**: \`rm -rf TARGET/tree\` right after the git status.
- **Raw transport floor**: nats.js request-reply (\`transport/bus.ts\`) between two processes
  through the same nats-server: 1 MiB (or max_payload) messages, 4 in flight, the same number of
  bytes each way as the sequential tests; and the median round trip of 2,000 sequential
  16-byte requests. No filesystem is involved: this is the most a mount could reach.

**Cold** means: \`sync\`, \`echo 3 > /proc/sys/vm/drop_caches\` (the page, dentry and inode
caches of the mounts and of the directories behind them), then a wait for the caches each FUSE
server keeps in its own memory to expire: for splitbrain its \`cache_timeout\` (1 s by default)
plus 0.5 s, 21 s for sshfs (its directory cache keeps entries for 20 s by default), 1.5 s for
bindfs (the kernel's 1 s timeouts; it caches nothing itself), none for the local disk. Passes are interleaved over the targets (pass 1 everywhere, then pass 2, ...), so
other load on the machine spreads evenly.

On the first pass only, untimed checks compare the data: \`cmp\` of the written file on the
slave side and of the cold read through the mount, \`tar --diff\` on both sides, the \`find\`
listing through the mount against the slave's, \`git fsck\` on the slave side. A failed check
marks its cell with † and is listed under the table.

## Targets (from the issue)

- Every workload at least as fast as sshfs (✓ in the "× faster" column).
- Sequential read and write at least 80 % of the raw transport floor.
- Aim for 2× sshfs on untar and \`find -ls\`.

## Latest results
`;

const DEFAULT_NOTES = `${NOTES_HEADING}

_Written by hand, kept by \`npm run bench\`: everything from this heading on is preserved._
`;

export async function writePerformanceDoc(results: string): Promise<void> {
  const existing = await readFile(PERFORMANCE_DOC, 'utf8').catch(() => '');
  const at = existing.search(new RegExp(`^${NOTES_HEADING}\\s*$`, 'm'));
  const notes = at >= 0 ? existing.slice(at) : DEFAULT_NOTES;
  await writeFile(PERFORMANCE_DOC, `${INTRO}\n${results.trimEnd()}\n\n${notes.trimEnd()}\n`);
}
