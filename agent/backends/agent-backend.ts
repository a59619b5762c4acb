/**
 * The agent's operating system, one interface per service; the agent picks the implementation
 * for the platform it runs on and names it in its hello and `status`. The services' policy (the
 * root jail, caller checks, --read-only, --dev-allow, --exec-allow) stays with the services;
 * what is behind these interfaces is system calls (docs/architecture.md, "The agent's backends").
 */
import type { ChangeWatchBackend } from './change-watch-backend.js';
import type { DevicesBackend } from './devices-backend.js';
import type { FilesBackend } from './files-backend.js';
import { linuxChangeWatch } from './linux/linux-change-watch.js';
import { linuxDevices } from './linux/linux-devices.js';
import { linuxFiles } from './linux/linux-files.js';
import { linuxProcesses } from './linux/linux-processes.js';
import type { ProcessesBackend } from './processes-backend.js';

export interface AgentBackend {
  /** As hello and status show it. */
  readonly name: string;
  readonly files: FilesBackend;
  readonly processes: ProcessesBackend;
  readonly devices: DevicesBackend;
  readonly changeWatch: ChangeWatchBackend;
}

export class NoBackendError extends Error {
  override name = 'NoBackendError';
}

/** The backend for `platform` (process.platform); a clear error where there is none. */
export function backendFor(platform: NodeJS.Platform): AgentBackend {
  if (platform === 'linux') {
    return { name: 'linux', files: linuxFiles(), processes: linuxProcesses(), devices: linuxDevices(), changeWatch: linuxChangeWatch() };
  }
  throw new NoBackendError(`the agent has no backend for ${platform} yet: it runs on Linux slaves`);
}
