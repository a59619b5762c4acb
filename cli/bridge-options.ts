/** The spawn bridge's options, shared by `bridge`, `sidecar` and `shell`. */
import type { Command } from 'commander';
import type { ExecUser } from '../sidecar/exec-user.js';
import { collect, execUser, metrics, slaveWait, withBusAuth } from './options.js';

/** What `bridge` and `sidecar` take to run the spawn bridge. */
export interface BridgeCliOptions {
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
  /** commander's `--no-link`: false to keep everything on the bus. */
  link: boolean;
}

export function withBridgeOptions(command: Command): Command {
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
    .addOption(metrics())
    .option('--no-link', 'keep bridged commands\' requests and output on the bus: no direct link to the agent '
      + '(default: one, once the agent offers it, as a mount makes; the bus whenever it is down)');
}

export function bridgeSettings(opts: BridgeCliOptions) {
  return {
    commands: opts.command, bridgeAll: opts.bridgeAll, bridgeMissing: opts.bridgeMissing, keep: opts.keep, defaultCwd: opts.defaultCwd,
    envNames: opts.env, envPrefixes: opts.envPrefix, execUser: opts.execUser, slaveWaitMs: opts.slaveWait * 1000, link: opts.link,
  };
}
