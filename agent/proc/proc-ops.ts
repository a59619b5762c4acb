/**
 * Process ops: one handler each. The process runs on the slave as the agent's user (or the
 * uid, gid and groups asked for, which needs a root agent: identity.ts), in a slave directory
 * resolved inside the export root, with the slave's PATH and login variables under the
 * environment the master sent.
 */
import { SlaveError, isOutputSubjectOf, outputSubject } from '../../protocol/index.js';
import { REPLY_OVERHEAD, type AgentContext, type HandlerTable } from '../context.js';
import { agentMetrics } from '../agent-metrics.js';
import { execAllowed } from './exec-policy.js';
import type { SpawnSpec } from './spawned-process.js';
import { agentIds, spawnIdentity } from './identity.js';

/**
 * How long a spawn waits, at most, for the descriptors of files masters released to close (or
 * reach the commits): a script a master wrote and closed just before asking to run it must not
 * be busy (ETXTBSY). Closes take microseconds; the bound is for a filesystem that hangs.
 */
const RELEASED_WAIT_MS = 1000;

/** Variables a session on the slave gets from the slave, unless the master sets them. */
const SLAVE_VARIABLES = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG'] as const;

function sessionEnv(requested: Record<string, string>, defaultPath: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of SLAVE_VARIABLES) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= defaultPath;
  return { ...env, ...requested };
}

function checkPolicy(ctx: AgentContext, file: string, command: string): void {
  if (execAllowed(ctx.execPolicy, file)) return;
  ctx.log.warn({ command, file }, 'spawn refused by the exec policy');
  throw new SlaveError('EACCES', `${command}: not allowed by the agent's exec policy`);
}

export const procOps: HandlerTable = {
  'proc.spawn': async ({ argv, env, cwd, uid, gid, groups, pty, output, window, cuts, linkOutput }, ctx) => {
    // Output goes only to this agent's own output subjects, which the bus's permissions let
    // exactly the masters granted this slave read: never to a subject a request names freely.
    if (!isOutputSubjectOf(ctx.hello().agentId, output)) {
      throw new SlaveError('EINVAL', `output subject ${output} is not one of ${outputSubject(ctx.hello().agentId, '*')}`);
    }
    // What masters released reaches the commits, which then close what they kept.
    await ctx.handles.released(RELEASED_WAIT_MS);
    await ctx.commits.unbusy();
    const hostCwd = ctx.jail.resolve(cwd, true);
    let isDir: boolean;
    try {
      isDir = ctx.backend.files.stat(hostCwd).isDirectory();
    } catch {
      throw new SlaveError('ENOENT', `working directory ${cwd} does not exist on the slave`);
    }
    if (!isDir) throw new SlaveError('ENOTDIR', `working directory ${cwd} is not a directory on the slave`);
    // Before anything is looked up: a non-root agent asked for another user refuses (EPERM).
    const identity = spawnIdentity({ uid, gid, groups }, agentIds());
    const processes = ctx.backend.processes;
    const fullEnv = sessionEnv(env, processes.defaultPath);
    const command = argv[0] as string;
    const searchPath = fullEnv.PATH ?? processes.defaultPath;
    let how: Pick<SpawnSpec, 'file' | 'argv'>;
    if (ctx.enterNamespaces === undefined) {
      const file = processes.findCommand(command, searchPath, hostCwd);
      checkPolicy(ctx, file, command);
      how = { file, argv };
    } else {
      // Looked up in the export root (the slave's /), run by the slave's path.
      const slaveFile = processes.findCommand(command, searchPath, cwd, (p) => ctx.jail.resolve(p));
      checkPolicy(ctx, slaveFile, command);
      how = processes.enterNamespaces(ctx.enterNamespaces, slaveFile, argv, cwd, identity?.uid);
    }
    // Taken on the agent's side, before entering namespaces (which then takes only the uid).
    if (identity) how = processes.runAs(identity, how, { uid: ctx.enterNamespaces === undefined });
    const proc = await ctx.procs.spawn({
      ...how, env: fullEnv, cwd: hostCwd, pty, window, maxChunk: ctx.maxPayload - REPLY_OVERHEAD, cuts: cuts ?? false,
    }, output, linkOutput === undefined ? undefined : ctx.links?.routeTo(linkOutput));
    agentMetrics.spawned.inc();
    return { procId: proc.procId, pid: proc.pid };
  },

  'proc.stdin': async ({ procId, data, eof }, ctx) => {
    await ctx.procs.get(procId).writeStdin(data, eof);
    return {};
  },

  'proc.signal': async ({ procId, signal }, ctx) => {
    ctx.procs.get(procId).signal(signal);
    return {};
  },

  'proc.resize': async ({ procId, rows, cols }, ctx) => {
    ctx.procs.get(procId).resize(rows, cols);
    return {};
  },

  'proc.hangup': async ({ procId }, ctx) => {
    const proc = ctx.procs.get(procId);
    ctx.log.debug({ procId, pid: proc.pid }, 'its master hung up: hanging up on the process');
    proc.hangUp(true);
    return {};
  },

  'proc.credit': async ({ procId, bytes, received }, ctx) => {
    ctx.procs.find(procId).credit(bytes, received);
    return {};
  },

  'proc.resend': async ({ procId, from, bus }, ctx) => {
    const proc = ctx.procs.find(procId);
    if (bus === true) ctx.procs.offLink(procId);
    const sent = proc.resend(from);
    ctx.log.debug({ procId, from, sent }, 'process events sent again');
    return {};
  },

  'proc.keepalive': async ({ procIds }, ctx) => ctx.procs.keepalive(procIds),
};
