/**
 * How the long-running commands (agent, mount, bridge, sidecar) serve: they report their start on
 * the start-report pipe, then run until a signal or until the server says it stopped.
 */
import { reportStart } from './start-report.js';

/** Runs until SIGINT/SIGTERM or until `stopped` settles, then runs `shutdown` once. */
export async function serveUntilSignal(shutdown: () => Promise<void>, stopped?: Promise<void>): Promise<void> {
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    stopped?.then(done, done);
  });
  await shutdown();
}

/**
 * Starts a server and reports the start on fd 3 (cli/start-report.ts: the background mount and
 * the tests wait for it), then serves until a signal or until the server says it stopped.
 */
export async function serveReported(start: () => Promise<{ stop(): Promise<void>; stopped?: Promise<void> }>): Promise<void> {
  let server;
  try {
    server = await start();
  } catch (err) {
    reportStart(err as Error);
    throw err;
  }
  reportStart();
  await serveUntilSignal(() => server.stop(), server.stopped);
}
