/**
 * The commands that put a slave under a test: `sidecar` (the test containers' companion), `run`
 * (the sidecar and a test container, with Docker), `shell` (the same view for a command on this
 * machine, in a namespace) and `health` (the sidecar's healthcheck).
 */
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { busAuthFromEnv } from '../transport/bus-auth.js';
import { serveMetrics } from '../transport/metrics.js';
import type { ExecUser } from '../sidecar/exec-user.js';
import { bridgeSettings, withBridgeOptions, type BridgeCliOptions } from './bridge-options.js';
import { startChildServer } from './daemon.js';
import { LOG_LEVELS, createLogger } from './logger.js';
import { withMountFlags } from './node-flags.js';
import {
  NATS_URL_HELP, agentId, agentIdFromEnv, collect, envFlag, execUser, execUserArg, fromEnv, listFromEnv, logLevel, nonNegative, withBusAuth,
} from './options.js';
import { serveReported } from './serve.js';

// Loaded by their commands only: an agent's start stays small (docs/performance.md).
const loadSidecar = () => import('../sidecar/sidecar.js');
const loadHealth = () => import('../sidecar/health.js');

export function addTestCommands(program: Command): void {
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
        process.exitCode = await runInShellNamespace(process.argv.slice(2), withMountFlags(process.execArgv));
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
}

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
