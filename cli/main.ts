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
import { WATCH_MODES, startAgent, type LinkSetting, type WatchMode } from '../agent/agent.js';
import { whenUnmounted } from '../mount/mount-watch.js';
import { serveMetrics } from '../transport/metrics.js';
import { agentIdFromHostname } from '../protocol/index.js';
import { bridgeSettings, withBridgeOptions, type BridgeCliOptions } from './bridge-options.js';
import { daemonize } from './daemon.js';
import { addInspectCommands } from './inspect-commands.js';
import { serveReported, serveUntilSignal } from './serve.js';
import { addTestCommands } from './test-commands.js';
import { createLogger } from './logger.js';
import {
  DEFAULT_NATS, NATS_URL_HELP, VERSION, agentId, agentIdFromEnv, byteSize, collect, linkAddress, linkSetting, logLevel,
  metrics, nonNegative, positiveSeconds, seconds, slaveWait, withBusAuth,
} from './options.js';

// The FUSE mount is loaded only by the commands that mount: its binding needs libfuse, which an
// agent-only machine (or the agent image) does not have.
const loadMount = () => import('../mount/mount.js');
// Nor do the master's other commands load at every start: an agent stays small (docs/performance.md).
const loadBridge = () => import('../sidecar/bridge-service.js');
const loadExec = () => import('../sidecar/exec-session.js');

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
    + 'masters keep what is not yet durable (fractions allowed, at least 0.05)', seconds, 2)
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
  .option('--lock-lease <seconds>', 'how long a flock lock taken through a mount outlives its master\'s silence (masters renew '
    + 'theirs every third of it): a master that died or was cut off lets go of a board\'s lock this late', positiveSeconds, 60)
  .option('--link <where>', 'direct TLS connections for masters\' requests and device streams, beside the bus: auto (listen on the '
    + 'address the NATS server sees this agent at, any free port), off (everything stays on the bus), or HOST[:PORT]', linkSetting)
  .addOption(new Option('--device-link <where>', 'the former name of --link').argParser(linkSetting).hideHelp())
  .option('--link-offer <host:port>', 'where masters are told to connect for links, when that is not where the agent listens '
    + '(a published container port, a port forwarded to this machine)', linkAddress)
  .addOption(logLevel())
  .action(async (opts: {
    nats: string; id?: string; root: string; readOnly: boolean; devRoot: string; devAllow: string[];
    enterNamespaces?: number; commitInterval: number; exec: boolean; execAllow: string[]; metrics?: string; logLevel: string;
    allowDeviceNodes: boolean; watchMax?: number; watchHelper?: string; watchMode: WatchMode; outputBudget?: number; outputGrace: number; lockLease: number;
    link?: LinkSetting; deviceLink?: LinkSetting; linkOffer?: { host: string; port: number };
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
      outputBudget: opts.outputBudget, outputGraceMs: opts.outputGrace * 1000, lockLeaseMs: opts.lockLease * 1000, link: opts.link ?? opts.deviceLink ?? 'auto', linkOffer: opts.linkOffer,
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

addTestCommands(program);
addInspectCommands(program);

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
