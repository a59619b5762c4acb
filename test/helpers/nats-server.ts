/** A real nats-server on a random loopback port, one per test suite. */
import { spawn, type ChildProcess } from 'node:child_process';
import { stopProcess } from './processes.js';

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  /** Stops and starts it again on the same port. */
  restart(): Promise<void>;
}

function launch(port: number, extraArgs: string[], env?: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), ...extraArgs], {
      stdio: ['ignore', 'pipe', 'pipe'], env: env === undefined ? process.env : { ...process.env, ...env },
    });
    let log = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nats-server did not start within 10 s:\n${log}`));
    }, 10_000);
    const onData = (d: Buffer) => {
      log += d.toString();
      const m = /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        child.stderr?.off('data', onData);
        child.stderr?.resume();
        resolve({ child, port: Number(m[1]) });
      }
    };
    child.stderr?.on('data', onData);
    child.stdout?.resume();
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code}:\n${log}`));
    });
  });
}

/** `env` is added to ours (a configuration file may name secrets by environment variable). */
export async function startNats(extraArgs: string[] = [], env?: NodeJS.ProcessEnv): Promise<NatsServer> {
  let { child, port } = await launch(-1, extraArgs, env);
  return {
    get url() { return `nats://127.0.0.1:${port}`; },
    get port() { return port; },
    async stop() { await stopProcess(child); },
    async restart() {
      await stopProcess(child);
      ({ child, port } = await launch(port, extraArgs, env));
    },
  };
}
