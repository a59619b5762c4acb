/**
 * A handle of the mount's (an open file, an open device) stands for one of the agent's, which
 * belongs to one run of the agent. Requests by it carry that run's boot id; a restarted agent
 * answers ESTALE, and the handle is opened again (once, whoever asks first) and the request sent
 * again. Used by remote-fs.ts for files and device-fs.ts for devices.
 */
import { SlaveError } from '../protocol/index.js';

export interface AgentHandle {
  agentFh: number;
  /** The agent boot `agentFh` belongs to. */
  agentBoot: string;
  /** While the handle is being opened again on a restarted agent. */
  reopening?: Promise<void>;
}

/** What opening a handle again gave: the new agent's handle number and boot. */
export interface Reopened {
  agentFh: number;
  agentBoot: string;
}

/**
 * `send(fh, boot)` by the handle; on ESTALE, `reopen()` (shared by concurrent senders, skipped if
 * another sender already reopened it) and send again, at most twice. `settle`, when given, is
 * awaited before each try and before reopening (the mount's writing-again of lost data).
 */
export async function sendByHandle<T>(
  handle: AgentHandle,
  send: (agentFh: number, agentBoot: string) => Promise<T>,
  reopen: () => Promise<Reopened>,
  settle?: () => Promise<void>,
): Promise<T> {
  for (let tries = 0; ; tries++) {
    await settle?.();
    const boot = handle.agentBoot;
    try {
      return await send(handle.agentFh, boot);
    } catch (err) {
      if (tries >= 2 || !(err instanceof SlaveError) || err.errnoName !== 'ESTALE') throw err;
      await settle?.();
      if (handle.agentBoot === boot) await reopenOnce(handle, reopen);
    }
  }
}

function reopenOnce(handle: AgentHandle, reopen: () => Promise<Reopened>): Promise<void> {
  handle.reopening ??= reopen()
    .then(({ agentFh, agentBoot }) => {
      handle.agentFh = agentFh;
      handle.agentBoot = agentBoot;
    })
    .finally(() => { handle.reopening = undefined; });
  return handle.reopening;
}
