/**
 * What a path's depth costs the agent (issue 14, point 4): `fs.getattr` of a file at depth 1, 10,
 * 100 and 200, straight to a real agent on a real nats-server (no mount), and the root jail's
 * `resolve` alone in this process. Run: `npm run build && node dist/bench/agent-depth.js`
 * (env `DEPTH_CALLS`, default 2000 calls per depth).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RootJail } from '../agent/root-jail.js';
import { rawClient } from '../test/helpers/raw-client.js';
import { startBareAgent } from '../test/helpers/slave.js';

const DEPTHS = [1, 10, 100, 200];
const CALLS = Number(process.env.DEPTH_CALLS ?? 2000);

/** The slave path of a file `depth` components deep (the file itself the last). */
function slavePath(depth: number): string {
  return `/${[...Array.from({ length: depth - 1 }, (_, i) => `d${i}`), 'file'].join('/')}`;
}

function makeTree(root: string): void {
  const deepest = slavePath(Math.max(...DEPTHS)).split('/').slice(1, -1);
  for (let depth = 0; depth <= deepest.length; depth++) {
    const dir = join(root, ...deepest.slice(0, depth));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'file'), 'x');
  }
}

async function microsPerCall(call: () => unknown): Promise<number> {
  for (let i = 0; i < 50; i++) await call(); // warm up: caches, JIT
  const started = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) await call();
  return Number(process.hrtime.bigint() - started) / 1000 / CALLS;
}

const slave = await startBareAgent({ id: 'depth', prepare: async (root) => makeTree(root) });
const raw = await rawClient(slave.nats.url, 'depth');
try {
  const jail = RootJail.open(slave.root);
  console.log('| depth | jail.resolve (µs) | fs.getattr via the agent (µs) |');
  console.log('| ---: | ---: | ---: |');
  for (const depth of DEPTHS) {
    const path = slavePath(depth);
    const resolve = await microsPerCall(() => jail.resolve(path));
    const getattr = await microsPerCall(() => raw.client.call('fs.getattr', { path }));
    console.log(`| ${depth} | ${resolve.toFixed(1)} | ${getattr.toFixed(1)} |`);
  }
} finally {
  await raw.close();
  await slave.stop();
}
