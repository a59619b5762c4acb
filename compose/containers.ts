/**
 * The sidecar's and the test's container settings for `splitbrain run`: the same as
 * compose/docker-compose.yml's two services (keep them in step), plus what only code can know
 * (the slave's hostname from the sidecar's hello, the test image's own PATH).
 */
import type Docker from 'dockerode';
import { formatExecUser, type ExecUser } from '../sidecar/exec-user.js';
import { AUTH_ENV, type BusAuth } from '../transport/bus-auth.js';

export const SHARED = '/splitbrain';

export interface SidecarSpec {
  name: string; image: string; shareDir: string; networkMode: string; labels: Record<string, string>;
  slave: string; agentId?: string; commands: string[]; bridgeAll: boolean; bridgeMissing: boolean; pythonFallback: boolean;
  keep: string[]; execUser: ExecUser;
  maps: string[]; slaveAt: string; logLevel: string;
  /** NATS credentials and TLS files, handed to the sidecar (files bind-mounted read-only). */
  auth: BusAuth;
}

const AUTH_DIR = '/run/splitbrain-auth';
const AUTH_FILES = new Set<keyof BusAuth>(['creds', 'tlsCa', 'tlsCert', 'tlsKey']);

export function sidecarContainer(spec: SidecarSpec): Docker.ContainerCreateOptions {
  const env: Record<string, string> = {
    SPLITBRAIN_SLAVE: spec.slave, SPLITBRAIN_AGENT: spec.agentId ?? '', SPLITBRAIN_COMMANDS: spec.commands.join(' '),
    SPLITBRAIN_BRIDGE_ALL: spec.bridgeAll ? '1' : '', SPLITBRAIN_KEEP: spec.keep.join(' '),
    SPLITBRAIN_BRIDGE_MISSING: spec.bridgeMissing ? '1' : '', SPLITBRAIN_PYTHON_FALLBACK: spec.pythonFallback ? '1' : '',
    SPLITBRAIN_EXEC_USER: formatExecUser(spec.execUser),
    SPLITBRAIN_MAPS: spec.maps.join(' '), SPLITBRAIN_LOG_LEVEL: spec.logLevel,
  };
  const authMounts: Docker.MountSettings[] = [];
  for (const [key, value] of Object.entries(spec.auth) as [keyof BusAuth, string][]) {
    if (AUTH_FILES.has(key)) {
      authMounts.push({ Type: 'bind', Source: value, Target: `${AUTH_DIR}/${key}`, ReadOnly: true });
      env[AUTH_ENV[key]] = `${AUTH_DIR}/${key}`;
    } else {
      env[AUTH_ENV[key]] = value;
    }
  }
  return {
    name: spec.name,
    Image: spec.image,
    Cmd: ['sidecar', '--dir', SHARED, '--slave-seen-at', spec.slaveAt],
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: spec.labels,
    Healthcheck: {
      Test: ['CMD', 'splitbrain', 'health', '--dir', SHARED],
      Interval: 1e9, Timeout: 5e9, Retries: 3, StartPeriod: 120e9,
    },
    HostConfig: {
      Init: true,
      // The host's PID namespace: the mount reads each caller's supplementary groups from
      // /proc/<pid>, and sees the test container's processes only from there.
      PidMode: 'host',
      // FUSE in a container: the device, the right to mount, no AppArmor profile forbidding it.
      Devices: [{ PathOnHost: '/dev/fuse', PathInContainer: '/dev/fuse', CgroupPermissions: 'rwm' }],
      CapAdd: ['SYS_ADMIN'],
      SecurityOpt: ['apparmor:unconfined'],
      NetworkMode: spec.networkMode,
      Mounts: [{ Type: 'bind', Source: spec.shareDir, Target: SHARED, BindOptions: { Propagation: 'rshared' } }, ...authMounts],
    },
  };
}

export interface TestSpec {
  name: string; image: string; command: string[]; shareDir: string; networkMode: string;
  labels: Record<string, string>; hostname: string; imagePath: string; env: string[];
  /** --python-fallback: the hook first on PYTHONPATH, the image's own (if it sets one) after it. */
  pythonFallback: boolean;
  imagePythonPath?: string;
  slaveAt: string; maps: { slavePath: string; target: string }[]; tty: boolean; interactive: boolean;
}

export function testContainer(spec: TestSpec): Docker.ContainerCreateOptions {
  const bind = (source: string, target: string) => ({
    Type: 'bind' as const, Source: source, Target: target, BindOptions: { Propagation: 'rslave' as const },
  });
  return {
    name: spec.name,
    Image: spec.image,
    ...(spec.command.length > 0 ? { Cmd: spec.command } : {}),
    Hostname: spec.hostname,
    // Named commands (bin/) before the image's, the slave's others (fallback/, --bridge-missing)
    // after; with --python-fallback its hook (python/) first on PYTHONPATH, else the image's own.
    Env: [
      `PATH=${SHARED}/bin:${spec.imagePath}:${SHARED}/fallback`, `SPLITBRAIN_BRIDGE_SOCKET=${SHARED}/bridge.sock`,
      ...(spec.pythonFallback ? [`PYTHONPATH=${SHARED}/python${spec.imagePythonPath ? `:${spec.imagePythonPath}` : ''}`] : []),
      ...spec.env,
    ],
    Labels: spec.labels,
    Tty: spec.tty,
    OpenStdin: spec.interactive,
    StdinOnce: spec.interactive,
    AttachStdin: spec.interactive,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: {
      NetworkMode: spec.networkMode,
      Mounts: [
        bind(spec.shareDir, SHARED),
        bind(`${spec.shareDir}/slave`, spec.slaveAt),
        // The sidecar binds each mapped slave directory here once mounted (see sidecar/sidecar.ts).
        ...spec.maps.map((m) => bind(`${spec.shareDir}/map${m.slavePath}`, m.target)),
      ],
    },
  };
}
