/**
 * Who a slave process runs as: the uid, gid and groups a spawn asks for (a root agent, with and
 * without --enter-namespaces, pipes and ptys alike), a non-root agent that can only be itself.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startNats, type NatsServer } from '../helpers/nats-server.js';
import { CLI, run, stopProcess } from '../helpers/processes.js';
import { startAgentProcess, type AgentProcess } from '../helpers/slave.js';

const NOBODY = 65534;
const quote = (words: string[]) => words.map((w) => `'${w}'`).join(' ');

/** Runs a shell command line on a terminal of script(1)'s; `stdout` is what the terminal showed. */
async function onTerminal(command: string): Promise<{ code: number | null; stdout: string }> {
  // script's stdin stays open until it has exited: at its end, script would type into the
  // terminal, and the remote pty would echo that into the output.
  const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'ignore'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  try {
    const ended = once(child.stdout, 'end');
    const [code] = (await once(child, 'exit')) as [number | null];
    await ended;
    return { code, stdout };
  } finally {
    child.stdin.end();
    await stopProcess(child, 'SIGKILL');
  }
}

describe('who a slave process runs as', () => {
  let tmp: string;
  let nats: NatsServer;
  const agents: AgentProcess[] = [];
  /** A root agent on a temp root; one entering our own namespaces (nsenter); one running as nobody. */
  let rootAgent: string;
  let nsAgent: string;
  let nobodyAgent: string;

  const execArgs = (agent: string, args: string[]) => [CLI, 'exec', nats.url, '--agent', agent, ...args];
  const exec = (agent: string, args: string[]) => run(process.execPath, execArgs(agent, args), { timeoutMs: 30_000 });
  /** `exec -t` on a terminal of script(1)'s: its status and output (lines end in \r\r\n: both terminals add one). */
  const execTty = (agent: string, args: string[]) => onTerminal(quote([process.execPath, ...execArgs(agent, ['-t', ...args])]));

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'splitbrain-identity-'));
    await chmod(tmp, 0o755); // the agent running as nobody serves a root below it
    const root = join(tmp, 'root');
    await mkdir(root);
    nats = await startNats();
    agents.push(await startAgentProcess(nats.url, 'id-root', root));
    // Our own namespaces: every spawn goes through nsenter as with compose/slave.yml's agent.
    agents.push(await startAgentProcess(nats.url, 'id-ns', '/', ['--enter-namespaces', String(process.pid)]));
    agents.push(await startAgentProcess(nats.url, 'id-nobody', root, [], { uid: NOBODY, gid: NOBODY }));
    [rootAgent, nsAgent, nobodyAgent] = agents.map((a) => a.id) as [string, string, string];
  });
  after(async () => {
    for (const agent of agents) await agent.stop();
    await nats?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('a root agent runs a command as the uid and gid asked for, with no other groups: pipes and ptys, with and without nsenter', async () => {
    for (const agent of [rootAgent, nsAgent]) {
      const piped = await exec(agent, ['--uid', '4242', '--gid', '4343', '--', 'sh', '-c', 'id -u; id -g; id -G']);
      assert.equal(piped.code, 0, piped.stderr);
      assert.equal(piped.stdout, '4242\n4343\n4343\n', agent);
      const tty = await execTty(agent, ['--uid', '4242', '--gid', '4343', '--', 'sh', '-c', 'id -u; id -G']);
      assert.equal(tty.code, 0, tty.stdout);
      assert.match(tty.stdout, /^4242\r*\n4343\r*\n/, agent);
    }
  });

  it('a root agent asked for nothing runs the command as itself', async () => {
    for (const agent of [rootAgent, nsAgent]) {
      const result = await exec(agent, ['--', 'id', '-u']);
      assert.equal(result.stdout, '0\n', result.stderr);
    }
  });

  it('a non-root agent runs a command asked for its own uid and gid as itself', async () => {
    const piped = await exec(nobodyAgent, ['--uid', String(NOBODY), '--gid', String(NOBODY), '--', 'sh', '-c', 'id -u; id -g']);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout, `${NOBODY}\n${NOBODY}\n`);
    const tty = await execTty(nobodyAgent, ['--uid', String(NOBODY), '--', 'id', '-u']);
    assert.equal(tty.code, 0, tty.stdout);
    assert.match(tty.stdout, new RegExp(`^${NOBODY}\r*\n`));
  });

  it('a non-root agent refuses another user before running anything: EPERM, exit 255, pipes and ptys alike (a pty spawn used to exit 1 with "setgid(2) failed")', async () => {
    const piped = await exec(nobodyAgent, ['--uid', '0', '--gid', '0', '--', 'id']);
    assert.equal(piped.code, 255);
    assert.equal(piped.stdout, '');
    assert.match(piped.stderr, /runs as uid 65534 gid 65534, not as root: it cannot run commands as uid 0 gid 0 \(EPERM, on id-nobody\)/);
    const tty = await execTty(nobodyAgent, ['--uid', '0', '--', 'id']);
    assert.equal(tty.code, 255, tty.stdout);
    assert.match(tty.stdout, /cannot run commands as uid 0 gid 65534 \(EPERM/);
  });
});
