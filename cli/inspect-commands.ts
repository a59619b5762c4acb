/**
 * The commands that look at agents without using them: `hello` (one agent's hello), `status`
 * (every agent on the bus) and `top` (what one agent is doing).
 */
import { Command, InvalidArgumentError } from 'commander';
import { AgentClient, chooseAgent } from '../transport/agent-client.js';
import { listAgents, watchActivity } from '../transport/agent-status.js';
import { connectBus } from '../transport/bus.js';
import { createLogger } from './logger.js';
import { NATS_URL_HELP, agentId, logLevel, nonNegative, positiveSeconds, withBusAuth } from './options.js';
import { formatActivity, formatStatus } from './status-view.js';

/** One hello field as a shell wants it: strings bare, anything else as JSON. */
function fieldText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}


export function addInspectCommands(program: Command): void {
  withBusAuth(program.command('hello'))
    .description('print a slave agent\'s hello (id, hostname, boot id, root, ...) as JSON, or one field of it')
    .argument('<url>', NATS_URL_HELP)
    .option('--agent <id>', 'the agent (default: the only one on the bus)', agentId)
    .option('--field <name>', 'print only this field, e.g. hostname (for SLAVE_HOSTNAME in compose)')
    .addOption(logLevel())
    .action(async (url: string, opts: { agent?: string; field?: string; logLevel: string }) => {
      const log = createLogger(opts.logLevel);
      const bus = await connectBus({ url, name: 'splitbrain-hello', log });
      try {
        const id = opts.agent ?? await chooseAgent(bus);
        const hello: Record<string, unknown> = await new AgentClient(bus, id, { timeoutMs: 10_000, log }).hello();
        if (opts.field === undefined) process.stdout.write(`${JSON.stringify(hello, null, 2)}\n`);
        else if (opts.field in hello) process.stdout.write(`${fieldText(hello[opts.field])}\n`);
        else throw new InvalidArgumentError(`--field ${opts.field}: the hello has ${Object.keys(hello).join(', ')}`);
      } finally {
        await bus.close();
      }
    });

  withBusAuth(program.command('status'))
    .description('list the agents on a bus: id, hostname, boot id, uptime, version, policy')
    .argument('<url>', NATS_URL_HELP)
    .option('--agent <id>', 'ask these agents (repeatable; default: every agent that answers discovery)',
      (value: string, previous: string[]) => [...previous, agentId(value)], [])
    .option('--wait <seconds>', 'how long to wait for answers', positiveSeconds, 1)
    .option('--json', 'print the agents\' hellos as JSON', false)
    .addOption(logLevel())
    .action(async (url: string, opts: { agent: string[]; wait: number; json: boolean; logLevel: string }) => {
      const log = createLogger(opts.logLevel);
      const bus = await connectBus({ url, name: 'splitbrain-status', log });
      try {
        const agents = await listAgents(bus, { agentIds: opts.agent, waitMs: opts.wait * 1000, log });
        if (opts.json) process.stdout.write(`${JSON.stringify(agents, null, 2)}\n`);
        else if (agents.length > 0) process.stdout.write(formatStatus(agents, Date.now()));
        if (agents.length === 0) throw new Error('no agent answered on the bus; is `splitbrain agent` running?');
        const silent = agents.filter((a) => a.hello === undefined).map((a) => a.agentId);
        if (silent.length > 0) throw new Error(`no answer from ${silent.join(', ')}`);
      } finally {
        await bus.close();
      }
    });

  withBusAuth(program.command('top'))
    .description('show what an agent is doing: operations per second by op, errors, bytes, open handles')
    .argument('<url>', NATS_URL_HELP)
    .option('--agent <id>', 'the agent (default: the only one on the bus)', agentId)
    .option('-i, --interval <seconds>', 'time between samples', positiveSeconds, 2)
    .option('-n, --count <n>', 'stop after this many samples (default: at SIGINT)', nonNegative)
    .option('--json', 'print one JSON object per sample', false)
    .addOption(logLevel())
    .action(async (url: string, opts: { agent?: string; interval: number; count?: number; json: boolean; logLevel: string }) => {
      const log = createLogger(opts.logLevel);
      const bus = await connectBus({ url, name: 'splitbrain-top', log });
      const stop = new AbortController();
      const abort = () => stop.abort();
      process.once('SIGINT', abort);
      process.once('SIGTERM', abort);
      // A terminal gets a refreshed screen, as top; a pipe gets one block per sample, as iostat.
      const clear = process.stdout.isTTY && !opts.json ? '\x1b[H\x1b[2J' : '';
      let answered = 0;
      try {
        const id = opts.agent ?? await chooseAgent(bus);
        for await (const sample of watchActivity(bus, id, {
          intervalMs: opts.interval * 1000, count: opts.count, signal: stop.signal, log,
        })) {
          const at = new Date();
          if (sample instanceof Error) {
            process.stdout.write(opts.json
              ? `${JSON.stringify({ time: at.toISOString(), agentId: id, error: sample.message })}\n`
              : `${clear}${at.toISOString().slice(11, 19)}  ${id}  no answer: ${sample.message}\n\n`);
            continue;
          }
          answered++;
          process.stdout.write(opts.json
            ? `${JSON.stringify({ time: at.toISOString(), agentId: id, ...sample })}\n`
            : `${clear}${formatActivity(id, sample, at)}`);
        }
        if (answered === 0 && opts.count !== 0 && !stop.signal.aborted) throw new Error(`no answer from ${id}`);
      } finally {
        process.off('SIGINT', abort);
        process.off('SIGTERM', abort);
        await bus.close();
      }
    });
}
