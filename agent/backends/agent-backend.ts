/**
 * The agent's operating system, one interface per service; the agent picks the implementation
 * for the platform it runs on and names it in its hello and `status`. The services' policy (the
 * root jail, caller checks, --dev-allow, --exec-allow) stays with the services; what is behind
 * these interfaces is system calls. So far the devices and files services are behind one; the
 * processes and change-watch services still call Linux directly (issue 23).
 */
import type { DevicesBackend } from './devices-backend.js';
import type { FilesBackend } from './files-backend.js';
import { linuxDevices } from './linux/linux-devices.js';
import { linuxFiles } from './linux/linux-files.js';

export interface AgentBackend {
  /** As hello and status show it. */
  readonly name: string;
  readonly devices: DevicesBackend;
  readonly files: FilesBackend;
}

export class NoBackendError extends Error {
  override name = 'NoBackendError';
}

/** The backend for `platform` (process.platform); a clear error where there is none. */
export function backendFor(platform: NodeJS.Platform): AgentBackend {
  if (platform === 'linux') return { name: 'linux', devices: linuxDevices(), files: linuxFiles() };
  throw new NoBackendError(`the agent has no backend for ${platform} yet: it runs on Linux slaves`);
}
