/**
 * The ways the process bench runs a command, side by side: a plain local shell, splitbrain's
 * exec shim through the bridge, the `splitbrain exec` CLI, ssh with a new connection each time
 * and ssh over one ControlMaster connection. Each says how to run `true` and how to stream
 * zeros to its stdout; bridge-routes.ts and ssh-routes.ts start what theirs need.
 */
import { sh } from './run-command.js';

export const ROUTE_IDS = ['local', 'shim', 'exec-cli', 'ssh', 'ssh-cm'] as const;
export type RouteId = (typeof ROUTE_IDS)[number];

export const ROUTE_LABELS: Record<RouteId, string> = {
  'local': 'local `sh -c`',
  'shim': 'splitbrain shim',
  'exec-cli': '`splitbrain exec` (Node CLI)',
  'ssh': 'ssh, new connection',
  'ssh-cm': 'ssh, ControlMaster',
};

export interface Route {
  id: RouteId;
  /** Runs `true` on the route's far side: spawned with no shell of ours in front, timed to its exit. */
  trueArgv: string[];
  /** A shell command whose stdout, on this side, is `bytes` zero bytes made on the far side. */
  stream(bytes: number): string;
  /** Environment for both (the shim finds its bridge through it). */
  env: NodeJS.ProcessEnv;
}

/** The reference: nothing between us and the program but a fork and an exec. */
export function localRoute(): Route {
  return {
    id: 'local', trueArgv: ['sh', '-c', 'true'], env: process.env,
    stream: (bytes) => headZeros(['head'], bytes),
  };
}

/** `head -c BYTES /dev/zero` as one shell command, `head` being the words in `headArgv`. */
export function headZeros(headArgv: readonly string[], bytes: number): string {
  return [...headArgv, '-c', String(bytes), '/dev/zero'].map(sh).join(' ');
}
