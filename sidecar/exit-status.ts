/**
 * What a remote process's end means to the program that ran it on the master, as a shell and
 * ssh report it: the exit code; 128+N after signal N; 127 for a command the slave does not have,
 * 126 for one it may not run; 255 when the slave could not be asked at all (or the bus does not
 * let us ask it).
 */
import { constants } from 'node:os';
import { SlaveError } from '../protocol/index.js';
import { AgentUnreachableError, BusPermissionError } from '../transport/errors.js';
import type { ExitStatus } from './remote-process.js';

export const STATUS_NOT_FOUND = 127;
export const STATUS_NOT_EXECUTABLE = 126;
export const STATUS_UNREACHABLE = 255;

export function signalNumber(name: string): number | undefined {
  return (constants.signals as Record<string, number>)[name];
}

/**
 * A process whose output the agent cut off because this master fell behind (ExitStatus.cut)
 * ends as a writer whose reader went away: 128 + SIGPIPE, whatever signal the hang-up that
 * followed ended it with. Its reader got the output up to the cut, and a message says why.
 */
export function exitStatusOf(status: ExitStatus): number {
  if (status.cut !== undefined) return 128 + (signalNumber('SIGPIPE') ?? 13);
  if (status.code !== null) return status.code;
  return 128 + (signalNumber(status.signal ?? '') ?? 0);
}

/** What the user is told of a cut, on the command's stderr. */
export function cutMessage(cut: NonNullable<ExitStatus['cut']>, command: string, agentId: string): string {
  return `${command} on ${agentId}: ${cut.message} (${cut.errno})`;
}

/** The status and message for a spawn or a session that failed before the process could end. */
export function failureStatus(err: unknown, agentId: string): { status: number; message: string } {
  if (err instanceof AgentUnreachableError || err instanceof BusPermissionError) {
    return { status: STATUS_UNREACHABLE, message: `cannot reach the slave's agent ${agentId}: ${err.message}` };
  }
  if (err instanceof SlaveError) {
    if (err.errnoName === 'ENOENT') return { status: STATUS_NOT_FOUND, message: `${err.message} (on ${agentId})` };
    if (err.errnoName === 'EACCES') return { status: STATUS_NOT_EXECUTABLE, message: `${err.message} (on ${agentId})` };
    return { status: STATUS_UNREACHABLE, message: `${err.message} (${err.errnoName}, on ${agentId})` };
  }
  return { status: STATUS_UNREACHABLE, message: err instanceof Error ? err.message : String(err) };
}
