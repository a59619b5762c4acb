#!/usr/bin/env node
/**
 * The `splitbrain` command: argument parsing only; the work is done by agent/, mount/ and the
 * other folders. Exit status 0 on success, 1 on failure with a one-line message, 2 on misuse.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { Command, InvalidArgumentError, Option } from 'commander';
import { hostname } from 'node:os';
import { WATCH_MODES, startAgent, type WatchMode } from '../agent/agent.js';
import { whenUnmounted } from '../mount/mount-watch.js';
import { busAuthFromEnv } from '../transport/bus-auth.js';
import { serveMetrics } from '../transport/metrics.js';
import { agentIdFromHostname } from '../protocol/index.js';
import type { ExecUser } from '../sidecar/exec-user.js';
import { daemonize, startChildServer } from './daemon.js';
import { withServerFlags } from './node-flags.js';
import { addInspectCommands } from './inspect-commands.js';
import { reportStart } from './start-report.js';
import { LOG_LEVELS, createLogger } from './logger.js';
import {
  DEFAULT_NATS, NATS_URL_HELP, VERSION, agentId, agentIdFromEnv, byteSize, collect, envFlag, execUser, execUserArg, fromEnv, listFromEnv, logLevel,
  metrics, nonNegative, positiveSeconds, slaveWait, withBusAuth,
} from './options.js';

// The FUSE mount is loaded only by the commands that mount: its binding needs libfuse, which an
// agent-only machine (or the agent image) does not have.
const loadMount = () => import('../mount/mount.js');
const loadSidecar = () => import('../sidecar/sidecar.js');
// Nor do the master's other commands load at every start: an agent stays small (docs/performance.md).
const loadBridge = () => import('../sidecar/bridge-service.js');
const loadExec = () => import('../sidecar/exec-session.js');
const loadHealth = () => import('../sidecar/health.js');

/** Runs until SIGINT/SIGTERM or until `stopped` settles, then runs `shutdown` once. */
async function serveUntilSignal(shutdown: () => Promise<void>, stopped?: Promise<void>): Promise<void> {
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
async function serveReported(start: () => Promise<{ stop(): Promise<void>; stopped?: Promise<void> }>): Promise<void> {
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

/** What `bridge` and `sidecar` take to run the spawn bridge. */
interface BridgeCliOptions {
  command: string[];
  bridgeAll: boolean;
  bridgeMissing: boolean;
  keep: string[];
  defaultCwd: string;
  env: string[];
  envPrefix: string[];
  execUser: ExecUser;
  slaveWait: number;
  metrics?: string;
}

function withBridgeOptions(command: Command): Command {
  return withBusAuth(command)
    .option('--command <name>', 'bridge this command (repeatable)', collect, [])
    .option('--bridge-all', 'bridge every executable on the slave\'s PATH but the --keep ones', false)
    .option('--keep <glob>', 'with --bridge-all, keep these local too (repeatable; shells and interpreters always are)', collect, [])
    .option('--bridge-missing', 'bridge every executable on the slave\'s PATH into a directory for the END of the test\'s '
      + 'PATH: what the test has runs locally, the rest on the slave', false)
    .option('--default-cwd <dir>', 'slave directory for bridged commands started outside the slave\'s files', '/')
    .option('--env <name>', 'let this variable cross (repeatable; LANG, LC_*, TERM, COLORTERM, TZ always do)', collect, [])
    .option('--env-prefix <prefix>', 'let variables with this prefix cross (repeatable)', collect, [])
    .addOption(execUser())
    .addOption(slaveWait())
    .addOption(metrics());
}

function bridgeSettings(opts: BridgeCliOptions) {
  return {
    commands: opts.command, bridgeAll: opts.bridgeAll, bridgeMissing: opts.bridgeMissing, keep: opts.keep, defaultCwd: opts.defaultCwd,
    envNames: opts.env, envPrefixes: opts.envPrefix, execUser: opts.execUser, slaveWaitMs: opts.slaveWait * 1000,
  };
}

const program = new Command()
  .name('splitbrain')
  .description('Run tests on a master machine against the files, devices and processes of a slave.')
  .version(VERSION)
  .showHelpAfterError()
  .enablePositionalOptions()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

withBusAuth(program.command('agent'))
  .description('serve this machine (the slave) to masters over NATS')
  .option('--nats <url>', NATS_URL_HELP, DEFAULT_NATS)
  .option('--id <name>', 'agent id masters address (default: $SPLITBRAIN_AGENT, else the hostname)', agentId)
  .option('--root <dir>', 'export root: nothing outside it is reachable', '/')
  .option('--read-only', 'refuse every change with EROFS', false)
  .option('--dev-root <dir>', 'the devices device mounts see', '/dev')
  .option('--dev-allow <glob>', 'devices (relative to --dev-root) masters may open (repeatable; '
    + 'default: tty* pts/* null zero urandom random)', collect, [])
  .option('--no-exec', 'refuse every process masters ask for (EACCES; exit status 126 on the master)')
  .option('--exec-allow <glob>', 'let masters run only matching commands (repeatable): a glob with / against the '
    + 'path found on PATH (/usr/bin/*), else against the name (systemctl)', collect, [])
  .addOption(metrics())
  .option('--commit-interval <seconds>', 'make written data durable (fsync) this often in the background; '
    + 'masters keep what is not yet durable', nonNegative, 2)
  .option('--enter-namespaces <pid>', 'run processes in the mount, UTS, IPC, network and cgroup namespaces of this '
    + 'process: 1 for an agent in a container serving its host (compose/slave.yml)', nonNegative)
  .option('--allow-device-nodes', 'let masters create block and character device nodes (mknod) on the slave; '
    + 'refused with EPERM otherwise', false)
  .option('--watch-max <dirs>', 'most directories the change feed watches for masters\' caches (least recently used '
    + 'go first); 0: no feed (default: half of fs.inotify.max_user_watches, at most 65536)', nonNegative)
  .option('--watch-helper <path>', 'the change watcher binary (default: the one built with splitbrain)')
  .addOption(new Option('--watch-mode <mode>', 'how the change feed learns of slave changes: auto (fanotify on the export\'s '
    + 'filesystem where the kernel and privileges allow, else inotify per directory) or inotify').choices(WATCH_MODES).default('auto'))
  .option('--output-budget <size>', 'process output kept until masters have it, all processes together (e.g. 64M); '
    + 'each process gets its share (default: 256M, or an eighth of this machine\'s memory if less)', byteSize)
  .option('--output-grace <seconds>', 'how long a master may stay behind the output budget before its process is cut off', positiveSeconds, 10)
  .addOption(logLevel())
  .action(async (opts: {
    nats: string; id?: string; root: string; readOnly: boolean; devRoot: string; devAllow: string[];
    enterNamespaces?: number; commitInterval: number; exec: boolean; execAllow: string[]; metrics?: string; logLevel: string;
    allowDeviceNodes: boolean; watchMax?: number; watchHelper?: string; watchMode: WatchMode; outputBudget?: number; outputGrace: number;
  }) => {
    if (opts.metrics) await serveMetrics(opts.metrics);
    if (!opts.exec && opts.execAllow.length > 0) throw new InvalidArgumentError('--no-exec and --exec-allow exclude each other');
    const log = createLogger(opts.logLevel);
    const agent = await startAgent({
      natsUrl: opts.nats, agentId: opts.id ?? agentIdFromEnv() ?? agentIdFromHostname(hostname()),
      root: resolve(opts.root), readOnly: opts.readOnly, devRoot: resolve(opts.devRoot),
      devAllow: opts.devAllow.length > 0 ? opts.devAllow : undefined, enterNamespaces: opts.enterNamespaces,
      commitIntervalMs: Math.max(opts.commitInterval, 0.05) * 1000,
      execPolicy: !opts.exec ? 'none' : opts.execAllow.length > 0 ? opts.execAllow : 'all', version: VERSION, log,
      allowDeviceNodes: opts.allowDeviceNodes, watchMax: opts.watchMax,
      watchHelper: opts.watchHelper === undefined ? undefined : resolve(opts.watchHelper), watchMode: opts.watchMode,
      outputBudget: opts.outputBudget, outputGraceMs: opts.outputGrace * 1000,
    });
    let displaced: Error | undefined;
    await serveUntilSignal(() => agent.stop(), agent.displaced.then((err) => {
      if (err === undefined) return new Promise<void>(() => undefined); // serve on
      displaced = err;
      return undefined;
    }));
    if (displaced) throw displaced;
  });

withBusAuth(program.command('mount'))
  .description('mount a slave\'s filesystem, like sshfs')
  .argument('<url>', NATS_URL_HELP)
  .argument('<mountpoint>', 'an existing empty directory')
  .option('--agent <id>', 'agent to mount (default: the only one on the bus)', agentId)
  .option('-o, --options <opts>', 'mount options, comma separated (repeatable): '
    + 'attr_timeout=S, entry_timeout=S, negative_timeout=S, cache=yes|no, timeout=S, '
    + 'readahead=N, writes_in_flight=N, allow_other, allow_root, ro, default_permissions', collect, [])
  .option('-f, --foreground', 'stay in the foreground', false)
  .option('--devices', 'mount the slave\'s devices (the agent\'s --dev-root) instead of its files', false)
  .option('--log-file <path>', 'write logs here (in the background logs are discarded otherwise)')
  .addOption(metrics())
  .addOption(slaveWait())
  .addOption(logLevel())
  .action(async (url: string, mountpoint: string, opts: {
    agent?: string; options: string[]; foreground: boolean; devices: boolean; logFile?: string; slaveWait: number;
    metrics?: string; logLevel: string;
  }) => {
    if (!opts.foreground) {
      process.exitCode = await daemonize(process.argv.slice(1));
      return;
    }
    const log = createLogger(opts.logLevel, opts.logFile);
    const mountPath = resolve(mountpoint);
    if (opts.metrics) await serveMetrics(opts.metrics);
    await serveReported(async () => {
      const { mountSlave } = await loadMount();
      const mounted = await mountSlave({
        natsUrl: url, agentId: opts.agent, mountPath, options: opts.options, devices: opts.devices,
        slaveWaitMs: opts.slaveWait * 1000, log,
      });
      const watch = whenUnmounted(mountPath);
      return {
        stopped: watch.done,
        async stop() {
          watch.stop();
          await mounted.unmount();
        },
      };
    });
  });

withBusAuth(program.command('exec'))
  .description('run a command on the slave with this terminal\'s stdin, stdout and stderr, like ssh host cmd')
  .argument('<url>', NATS_URL_HELP)
  .argument('<command...>', 'the command and its arguments (put -- before them)')
  .option('--agent <id>', 'agent to run on (default: the only one on the bus)', agentId)
  .option('-t, --tty', 'give the command a terminal (when stdin is one), as ssh -t', false)
  .option('-n, --no-stdin', 'do not read stdin (the command gets end of input), as ssh -n')
  .option('-C, --cwd <dir>', 'working directory on the slave', '/')
  .option('-e, --env <name=value>', 'set a variable for the command (repeatable)', collect, [])
  .option('--uid <uid>', 'run as this user id on the slave (needs a root agent)', nonNegative)
  .option('--gid <gid>', 'run with this group id on the slave (needs a root agent)', nonNegative)
  .addOption(slaveWait())
  .addOption(logLevel())
  .action(async (url: string, command: string[], opts: {
    agent?: string; tty: boolean; stdin: boolean; cwd: string; env: string[]; uid?: number; gid?: number;
    slaveWait: number; logLevel: string;
  }) => {
    const env: Record<string, string> = {};
    // Locale crosses as ssh's default SendEnv does; nothing else of ours does (never PATH).
    for (const [name, value] of Object.entries(process.env)) {
      if (value !== undefined && (name === 'LANG' || name.startsWith('LC_'))) env[name] = value;
    }
    for (const pair of opts.env) {
      const at = pair.indexOf('=');
      if (at <= 0) throw new InvalidArgumentError(`-e ${pair}: expected NAME=VALUE`);
      env[pair.slice(0, at)] = pair.slice(at + 1);
    }
    const { runExec } = await loadExec();
    process.exitCode = await runExec({
      natsUrl: url, agentId: opts.agent, argv: command, cwd: opts.cwd, env, tty: opts.tty,
      noStdin: !opts.stdin, uid: opts.uid, gid: opts.gid, slaveWaitMs: opts.slaveWait * 1000, log: createLogger(opts.logLevel),
    });
  });

withBridgeOptions(program.command('bridge')
  .description('serve the exec shim: commands run through it run on the slave')
  .argument('<url>', NATS_URL_HELP)
  .option('--agent <id>', 'agent to run on (default: the only one on the bus)', agentId)
  .option('--socket <path>', 'Unix socket the shims connect to (their SPLITBRAIN_BRIDGE_SOCKET)', '/splitbrain/bridge.sock')
  .option('--shim-dir <dir>', 'directory of command links for the front of the test\'s PATH (with --bridge-missing: '
    + 'its end, unless --fallback-dir)')
  .option('--fallback-dir <dir>', 'with --bridge-missing: the links go here instead, for the end of the test\'s PATH')
  .option('--python-fallback <dir>', 'write a Python hook here (the test\'s PYTHONPATH starts with it): modules the '
    + 'test lacks are imported from the slave\'s sys.path, seen under --slave-mount')
  .option('--slave-mount <dir>', 'where the test sees the slave\'s root: a cwd inside it becomes the slave\'s'))
  .addOption(logLevel())
  .action(async (url: string, opts: BridgeCliOptions & {
    agent?: string; socket: string; shimDir?: string; fallbackDir?: string; pythonFallback?: string; slaveMount?: string; logLevel: string;
  }) => {
    if (opts.metrics) await serveMetrics(opts.metrics);
    const dir = (d: string | undefined) => (d === undefined ? undefined : resolve(d));
    const { startBridgeService } = await loadBridge();
    await serveReported(() => startBridgeService({
      ...bridgeSettings(opts),
      natsUrl: url, agentId: opts.agent, socketPath: resolve(opts.socket),
      shimDir: dir(opts.shimDir), fallbackDir: dir(opts.fallbackDir), pythonDir: dir(opts.pythonFallback),
      slaveMount: dir(opts.slaveMount), log: createLogger(opts.logLevel),
    }));
  });

withBridgeOptions(program.command('sidecar')
  .description('serve one slave to test containers: its files, devices and commands under one directory')
  .argument('[url]', `${NATS_URL_HELP} (default: $SPLITBRAIN_SLAVE)`)
  .option('--agent <id>', 'the slave\'s agent (default: $SPLITBRAIN_AGENT, else the only one on the bus)', agentId)
  .option('--dir <dir>', 'the shared directory: slave/ (devices at slave/dev), map/, bin/, fallback/, python/, bridge.sock', '/splitbrain')
  .option('--python-fallback', 'modules a Python test lacks come from the slave\'s sys.path (<dir>/python first on its PYTHONPATH)', false)
  .option('--slave-seen-at <dir>', 'where test containers see <dir>/slave (default: <dir>/slave)')
  .option('--map <path>', 'offer the slave\'s directory, file or device <path> at <dir>/map/<path> (a terminal as a real one; repeatable)', collect, [])
  .option('-o, --options <opts>', 'mount options for the slave\'s files (as for mount)', collect, []))
  .addOption(logLevel())
  .addHelpText('after', `
Environment (for compose files; each adds to the options above):
  SPLITBRAIN_SLAVE        the NATS URL, when no <url> is given
  SPLITBRAIN_AGENT        --agent
  SPLITBRAIN_COMMANDS     commands to bridge, separated by spaces or commas (--command)
  SPLITBRAIN_BRIDGE_ALL   1 or true: --bridge-all
  SPLITBRAIN_BRIDGE_MISSING  1 or true: --bridge-missing (links in <dir>/fallback, the end of the test's PATH)
  SPLITBRAIN_PYTHON_FALLBACK 1 or true: --python-fallback
  SPLITBRAIN_KEEP         --keep globs, separated by spaces or commas
  SPLITBRAIN_MAPS         slave directories, files or devices to offer, separated by spaces or commas (--map)
  SPLITBRAIN_EXEC_USER    --exec-user, unless given
  SPLITBRAIN_SLAVE_WAIT   --slave-wait, unless given
  SPLITBRAIN_LOG_LEVEL    --log-level, unless given`)
  .action(async (url: string | undefined, opts: BridgeCliOptions & {
    agent?: string; dir: string; slaveSeenAt?: string; map: string[]; options: string[]; logLevel: string; pythonFallback: boolean;
  }, command: Command) => {
    const natsUrl = url ?? fromEnv('SPLITBRAIN_SLAVE');
    if (natsUrl === undefined) throw new InvalidArgumentError('give the slave\'s NATS URL (or set SPLITBRAIN_SLAVE)');
    const bridge = bridgeSettings({
      ...opts,
      command: [...opts.command, ...listFromEnv('SPLITBRAIN_COMMANDS')],
      keep: [...opts.keep, ...listFromEnv('SPLITBRAIN_KEEP')],
      bridgeAll: opts.bridgeAll || envFlag('SPLITBRAIN_BRIDGE_ALL'),
      bridgeMissing: opts.bridgeMissing || envFlag('SPLITBRAIN_BRIDGE_MISSING'),
      execUser: command.getOptionValueSource('execUser') === 'default'
        ? execUserArg(fromEnv('SPLITBRAIN_EXEC_USER') ?? 'caller', 'SPLITBRAIN_EXEC_USER') : opts.execUser,
    });
    const level = command.getOptionValueSource('logLevel') === 'default' ? fromEnv('SPLITBRAIN_LOG_LEVEL') ?? opts.logLevel : opts.logLevel;
    const waitEnv = fromEnv('SPLITBRAIN_SLAVE_WAIT');
    const slaveWaitS = command.getOptionValueSource('slaveWait') === 'default' && waitEnv !== undefined ? nonNegative(waitEnv) : opts.slaveWait;
    if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new InvalidArgumentError(`SPLITBRAIN_LOG_LEVEL: one of ${LOG_LEVELS.join(', ')}`);
    if (opts.metrics) await serveMetrics(opts.metrics);
    const { startSidecar } = await loadSidecar();
    await serveReported(() => startSidecar({
      natsUrl, agentId: opts.agent ?? agentIdFromEnv(), dir: resolve(opts.dir),
      slaveSeenAt: opts.slaveSeenAt, maps: [...opts.map, ...listFromEnv('SPLITBRAIN_MAPS')],
      pythonFallback: opts.pythonFallback || envFlag('SPLITBRAIN_PYTHON_FALLBACK'),
      // allow_other: the test may run as any user; the agent then acts as that user on the slave.
      mountOptions: ['allow_other', ...opts.options], log: createLogger(level), bridge: { ...bridge, slaveWaitMs: slaveWaitS * 1000 },
      slaveWaitMs: slaveWaitS * 1000,
      mountDevices: deviceMounter(natsUrl, slaveWaitS, level),
    }));
  });

/**
 * How the sidecar (and `shell`) mount the slave's devices: `splitbrain mount --devices` as a
 * child server (see startChildServer for why not in the same process).
 */
function deviceMounter(natsUrl: string, slaveWaitS: number, level: string, options: { detached?: boolean } = {}) {
  return (at: string, agent: string, seenAt: string, ptys: string | undefined) => startChildServer([
    // nonempty: over the slave's own dev/, which the files mount shows with entries.
    'mount', natsUrl, at, '--devices', '--foreground', '-o', 'nonempty,allow_other', '-o', `seen_at=${seenAt}`,
    ...(ptys === undefined ? [] : ['-o', `ptys=${ptys}`]), '--agent', agent,
    '--slave-wait', String(slaveWaitS), '--log-level', level,
  ], undefined, options);
}

/** `--map slave-path[:path]` of `run` and `shell`. */
function mapSpecs(specs: string[]): { slavePath: string; target: string }[] {
  return specs.map((spec) => {
    const [slavePath = '', target = slavePath] = spec.split(':');
    if (!slavePath.startsWith('/') || !target.startsWith('/')) throw new InvalidArgumentError(`--map ${spec}: absolute paths, slave-path[:path]`);
    return { slavePath, target };
  });
}

withBusAuth(program.command('run'))
  .description('run a test image against a slave: the sidecar and the test container, as compose/docker-compose.yml')
  .argument('<image>', 'the test image (unmodified)')
  .argument('[command...]', 'its command and arguments (default: the image\'s)')
  .passThroughOptions()
  .option('--slave <url>', 'the slave\'s NATS URL (default: $SPLITBRAIN_SLAVE)')
  .option('--agent <id>', 'the slave\'s agent (default: the only one on the bus)', agentId)
  .option('--command <name>', 'bridge this command (repeatable; default: hostname, uname)', collect, [])
  .option('--bridge-all', 'bridge every executable on the slave\'s PATH but the --keep ones', false)
  .option('--keep <glob>', 'with --bridge-all, keep these local too (repeatable)', collect, [])
  .option('--bridge-missing', 'bridge the slave\'s commands the image lacks: its own stay local', false)
  .option('--python-fallback', 'Python modules the image lacks come from the slave', false)
  .option('--map <slave-path[:path]>', 'show the slave\'s directory, file or device (a terminal as a real one: --map /dev/ttyUSB0) in the test at path (default: the same path; repeatable)', collect, [])
  .option('--slave-at <dir>', 'where the test sees the slave\'s root (its devices at <dir>/dev)', '/slave')
  .option('-e, --env <name=value>', 'set a variable in the test container (repeatable)', collect, [])
  .option('-t, --tty', 'give the test container a terminal', false)
  .option('-i, --interactive', 'keep the test\'s stdin open and feed it ours', false)
  .option('--network <mode>', 'network of both containers: bridge, host, or a network\'s name', 'bridge')
  .option('--share-dir <dir>', 'host directory on a shared mount for the sidecar\'s mounts', '/run/splitbrain')
  .option('--sidecar-image <image>', 'the sidecar image', 'splitbrain/sidecar:local')
  .option('--start-timeout <seconds>', 'how long the sidecar may take to become healthy', nonNegative, 120)
  .addOption(execUser())
  .addOption(logLevel())
  .addHelpText('after', `
Which commands run on the slave:
  named (--command, default hostname and uname)  these on the slave, everything else in the image:
                        the usual choice, nothing else changes
  missing only (--bridge-missing)   every command of the slave, after the image's own on PATH: the
                        image's ls and python3 stay local, what it lacks runs on the slave
  everything (--bridge-all)         every command of the slave first on PATH (shells, interpreters
                        and --keep excepted): even ls runs on the slave
--python-fallback does for Python modules what --bridge-missing does for commands.`)
  .action(async (image: string, command: string[], opts: {
    slave?: string; agent?: string; command: string[]; bridgeAll: boolean; bridgeMissing: boolean; pythonFallback: boolean; keep: string[]; map: string[];
    slaveAt: string; env: string[]; tty: boolean; interactive: boolean; network: string; shareDir: string;
    sidecarImage: string; startTimeout: number; execUser: ExecUser; logLevel: string;
  }) => {
    const slave = opts.slave ?? fromEnv('SPLITBRAIN_SLAVE');
    if (slave === undefined) throw new InvalidArgumentError('give the slave\'s NATS URL with --slave (or set SPLITBRAIN_SLAVE)');
    const maps = mapSpecs(opts.map);
    for (const pair of opts.env) {
      if (pair.indexOf('=') <= 0) throw new InvalidArgumentError(`-e ${pair}: expected NAME=VALUE`);
    }
    const { runTest } = await import('../compose/run.js');
    process.exitCode = await runTest({
      slave, agentId: opts.agent, image, command, sidecarImage: opts.sidecarImage, shareRoot: resolve(opts.shareDir),
      networkMode: opts.network, commands: opts.command.length > 0 ? opts.command : ['hostname', 'uname'],
      bridgeAll: opts.bridgeAll, bridgeMissing: opts.bridgeMissing, pythonFallback: opts.pythonFallback,
      keep: opts.keep, execUser: opts.execUser, maps, slaveAt: opts.slaveAt, env: opts.env, tty: opts.tty,
      interactive: opts.interactive, startTimeoutMs: opts.startTimeout * 1000, logLevel: opts.logLevel, auth: busAuthFromEnv(),
      log: createLogger(opts.logLevel),
    });
  });

withBridgeOptions(program.command('shell')
  .description('run a command here (default: your $SHELL) with the slave\'s files, devices and commands at their real paths, '
    + 'in a private mount namespace: no containers, nothing left when it exits')
  .argument('<url>', NATS_URL_HELP)
  .argument('[command...]', 'the command and its arguments (put -- before them; default: $SHELL)')
  .option('--agent <id>', 'the slave\'s agent (default: the only one on the bus)', agentId)
  .option('--map <slave-path[:path]>', 'show the slave\'s directory, file or device (a terminal as a real one: --map /dev/ttyUSB0) '
    + 'at path (default: the same path; repeatable)', collect, [])
  .option('--slave-at <dir>', 'where the slave\'s whole root is seen (its devices at <dir>/dev)', '/slave')
  .option('--python-fallback', 'Python modules the command lacks come from the slave', false)
  .option('-o, --options <opts>', 'mount options for the slave\'s files (as for mount)', collect, []))
  .addOption(logLevel())
  .addHelpText('after', `
The command runs as you (with sudo: as the user who ran sudo), in your working directory and
environment, with the commands chosen as for run (default: hostname and uname) first on PATH and
the slave's hostname; only it and what it starts see the slave's paths. Its exit status is
splitbrain shell's (128+N after signal N; 127: no such command; 125: splitbrain could not set up,
as run). Ctrl-C reaches the command as it would locally.
Without root it needs an unprivileged user namespace and /dev/fuse open to you.
For an IDE or a debugger: make the interpreter a wrapper, e.g.
  exec splitbrain shell nats://lab:4222 --map /etc/board -- python3 "$@"`)
  .action(async (url: string, command: string[], opts: BridgeCliOptions & {
    agent?: string; map: string[]; slaveAt: string; pythonFallback: boolean; options: string[]; logLevel: string;
  }) => {
    const maps = mapSpecs(opts.map);
    if (!opts.slaveAt.startsWith('/') || resolve(opts.slaveAt) === '/') throw new InvalidArgumentError(`--slave-at ${opts.slaveAt}: an absolute path below /`);
    const { SHELL_CALLER_ENV, SHELL_DIR_ENV, parseCaller, runInShellNamespace } = await import('../sidecar/shell-namespace.js');
    const callerSaid = process.env[SHELL_CALLER_ENV];
    const dir = process.env[SHELL_DIR_ENV];
    if (callerSaid === undefined || dir === undefined) {
      // Outside: run ourselves again in namespaces of our own (sidecar/shell-namespace.ts).
      process.exitCode = await runInShellNamespace(process.argv.slice(2), withServerFlags(process.execArgv));
      return;
    }
    if (opts.metrics) await serveMetrics(opts.metrics); // inside: the mounts and the bridge are there
    const { runShell, SHELL_SETUP_FAILED } = await import('../sidecar/shell.js');
    const bridge = bridgeSettings({ ...opts, command: opts.command.length > 0 ? opts.command : ['hostname', 'uname'] });
    try {
      process.exitCode = await runShell({
        natsUrl: url, agentId: opts.agent, command, maps, slaveAt: resolve(opts.slaveAt), dir, caller: parseCaller(callerSaid),
        // allow_other: the command runs as the caller, who is not the mount's owner.
        mountOptions: ['allow_other', ...opts.options], slaveWaitMs: opts.slaveWait * 1000, bridge, pythonFallback: opts.pythonFallback,
        mountDevices: deviceMounter(url, opts.slaveWait, opts.logLevel, { detached: true }), log: createLogger(opts.logLevel),
      });
    } catch (err) {
      process.stderr.write(`splitbrain shell: ${(err as Error).message}\n`);
      process.exitCode = SHELL_SETUP_FAILED;
    }
  });

addInspectCommands(program);

program.command('health')
  .description('exit 0 while a sidecar serves the directory (a compose healthcheck)')
  .option('--dir <dir>', 'the sidecar\'s shared directory', '/splitbrain')
  .action(async (opts: { dir: string }) => {
    const { checkHealth } = await loadHealth();
    const problem = await checkHealth(resolve(opts.dir));
    if (problem) {
      process.stderr.write(`splitbrain: unhealthy: ${problem}\n`);
      process.exitCode = 1;
    }
  });

program.command('umount')
  .alias('unmount')
  .description('unmount a splitbrain mount')
  .argument('<mountpoint>')
  .option('-z, --lazy', 'detach now, clean up when no longer busy', false)
  .action(async (mountpoint: string, opts: { lazy: boolean }) => {
    await promisify(execFile)('fusermount', [opts.lazy ? '-uz' : '-u', resolve(mountpoint)]);
  });

try {
  await program.parseAsync(process.argv);
  process.exit(process.exitCode ?? 0);
} catch (err) {
  const e = err as Error & { stderr?: string };
  process.stderr.write(`splitbrain: ${(e.stderr ?? '').trim() || e.message}\n`);
  // Arguments found wrong only once the command ran are misuse too (2), as commander's own.
  process.exit(err instanceof InvalidArgumentError ? 2 : 1);
}
