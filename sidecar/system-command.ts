/**
 * The system's own tools the sidecar and `splitbrain shell` run to change their mount namespace
 * (mount, umount, hostname): as root in a user namespace they do what Node has no call for.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** A tool failed: its command line and what it said. */
export class SystemCommandError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SystemCommandError';
  }
}

export async function systemCommand(command: string, args: string[]): Promise<void> {
  try {
    await promisify(execFile)(command, args);
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new SystemCommandError(`${command} ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}
