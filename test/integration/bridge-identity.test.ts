/**
 * Who a slave process runs as: the uid, gid and groups a spawn asks for (a root agent, with and
 * without --enter-namespaces, pipes and ptys alike), a non-root agent that can only be itself,
 * and the bridge's --exec-user: a bridged command runs as the shim's caller (several users, run
 * through the real shim with setpriv), as the agent, or as fixed ids.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FrameDecoder, FrameType, encodeFrame } from '../../sidecar/shim-frames.js';
import { startBridgeProcess, type BridgeProcess } from '../helpers/bridge.js';
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
  const bridges: BridgeProcess[] = [];
  /** A root agent on a temp root; one entering our own namespaces (nsenter); one running as nobody. */
  const rootAgent = 'id-root';
  const nsAgent = 'id-ns';
  const nobodyAgent = 'id-nobody';
  /** Bridges by name: `caller`, `agent` and `fixed` (4242:4343) to the root agent, `ns` and `nobody` (caller) to the others. */
  const bridge: Record<string, BridgeProcess> = {};

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'splitbrain-identity-'));
    // The agent running as nobody serves a root below it; shims run as other users reach the
    // bridges' sockets and shim directories in it.
    await chmod(tmp, 0o755);
    const root = join(tmp, 'root');
    await mkdir(root);
    nats = await startNats();
    agents.push(...await Promise.all([
      startAgentProcess(nats.url, rootAgent, root),
      // Our own namespaces: every spawn goes through nsenter as with compose/slave.yml's agent.
      startAgentProcess(nats.url, nsAgent, '/', ['--enter-namespaces', String(process.pid)]),
      startAgentProcess(nats.url, nobodyAgent, root, [], { uid: NOBODY, gid: NOBODY }),
    ]));
    await Promise.all(([
      ['caller', rootAgent, []], ['agent', rootAgent, ['--exec-user', 'agent']], ['fixed', rootAgent, ['--exec-user', '4242:4343']],
      ['ns', nsAgent, ['--exec-user', 'caller']], ['nobody', nobodyAgent, []],
    ] as const).map(async ([name, agent, args]) => {
      const started = await startBridgeProcess(nats.url, agent, join(tmp, `${name}.sock`), join(tmp, `${name}-bin`), [...args]);
      bridges.push(started);
      bridge[name] = started;
    }));
  });
  after(async () => {
    for (const b of bridges) await b.stop();
    for (const agent of agents) await agent.stop();
    await nats?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  describe('the agent', () => {
    const execArgs = (agent: string, args: string[]) => [CLI, 'exec', nats.url, '--agent', agent, ...args];
    const exec = (agent: string, args: string[]) => run(process.execPath, execArgs(agent, args), { timeoutMs: 30_000 });
    /** `exec -t` on a terminal of script(1)'s: its status and output (lines end in \r\r\n: both terminals add one). */
    const execTty = (agent: string, args: string[]) => onTerminal(quote([process.execPath, ...execArgs(agent, ['-t', ...args])]));

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

  describe('bridged commands run as their caller (--exec-user)', () => {
    /** The shim as `ids` (setpriv's --reuid, --regid, --groups or --clear-groups), through `via`. */
    const shimAs = (via: string, ids: { uid: number; gid: number; groups: readonly number[] } | 'root', script: string) => {
      const b = bridge[via] as BridgeProcess;
      const shim = join(b.shimDir, 'splitbrain-exec');
      const env = { ...process.env, SPLITBRAIN_BRIDGE_SOCKET: b.socket };
      if (ids === 'root') return run(shim, ['sh', '-c', script], { env, timeoutMs: 30_000 });
      const groups = ids.groups.length > 0 ? `--groups=${ids.groups.join(',')}` : '--clear-groups';
      return run('setpriv', [`--reuid=${ids.uid}`, `--regid=${ids.gid}`, groups, '--', shim, 'sh', '-c', script],
        { env, cwd: '/', timeoutMs: 30_000 });
    };
    const ids = 'id -u; id -g; id -G';
    const tester = { uid: 1000, gid: 1000, groups: [1000, 27] };

    it('caller (the default): the shim\'s uid, gid and groups, whoever runs it; a root caller stays root', async () => {
      for (const [as, want] of [
        [tester, '1000\n1000\n1000 27\n'],
        [{ uid: 4242, gid: 4343, groups: [] }, '4242\n4343\n4343\n'],
        [{ uid: 65534, gid: 65534, groups: [65534, 100, 4343] }, '65534\n65534\n65534 100 4343\n'],
        ['root', '0\n0\n0\n'],
      ] as const) {
        const result = await shimAs('caller', as, ids);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, want, JSON.stringify(as));
      }
    });

    it('caller with a terminal: the same ids on a pty', async () => {
      const b = bridge.caller as BridgeProcess;
      const result = await onTerminal(`SPLITBRAIN_BRIDGE_SOCKET='${b.socket}' setpriv --reuid=1000 --regid=1000 --groups=1000,27 `
        + `-- '${join(b.shimDir, 'splitbrain-exec')}' sh -c 'tty >/dev/null && id -G'`);
      assert.equal(result.code, 0, result.stdout);
      assert.match(result.stdout, /^1000 27\r*\n/);
    });

    it('caller through an agent in its host\'s namespaces: setpriv before nsenter keeps the groups', async () => {
      const result = await shimAs('ns', tester, ids);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, '1000\n1000\n1000 27\n');
    });

    it('caller with a non-root agent: the agent\'s own user, as sshfs and ssh run everything', async () => {
      const result = await shimAs('nobody', tester, ids);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `${NOBODY}\n${NOBODY}\n${NOBODY}\n`);
    });

    it('agent: the agent\'s user (root) whoever calls', async () => {
      const result = await shimAs('agent', tester, ids);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, '0\n0\n0\n');
    });

    it('UID:GID: those ids, the gid the only group, whoever calls (root too)', async () => {
      for (const as of [tester, 'root'] as const) {
        const result = await shimAs('fixed', as, ids);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, '4242\n4343\n4343\n');
      }
    });

    it('a caller with more groups than cross (4,096) is refused with 126 and the reason, nothing run', async () => {
      const groups = Array.from({ length: 4097 }, (_, i) => 10_000 + i);
      const result = await shimAs('caller', { uid: 1000, gid: 1000, groups }, 'echo ran');
      assert.equal(result.code, 126);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /the caller has 4097 supplementary groups; at most 4096 can cross to the slave/);
    });

    it('a version 1 shim (no caller in START) still runs, as the agent\'s user, and the bridge says why once', async () => {
      const b = bridge.caller as BridgeProcess;
      const run1 = async () => {
        const socket = createConnection(b.socket);
        const strings = Buffer.from(['/', 'id', '-u'].map((w) => `${w}\0`).join(''));
        const head = Buffer.alloc(14);
        head[0] = 1; // version 1: no uid, gid or groups
        head.writeUInt32BE(2, 6);
        socket.write(encodeFrame(FrameType.Start, Buffer.concat([head, strings])));
        socket.write(encodeFrame(FrameType.StdinEof));
        const decoder = new FrameDecoder();
        let stdout = '';
        let exit: Buffer | undefined;
        for await (const chunk of socket) {
          for (const frame of decoder.push(chunk as Buffer)) {
            if (frame.type === FrameType.Stdout) stdout += frame.payload.toString();
            if (frame.type === FrameType.Exit || frame.type === FrameType.Error) exit = frame.payload;
          }
        }
        return { stdout, exit };
      };
      for (let i = 0; i < 2; i++) {
        const { stdout, exit } = await run1();
        assert.deepEqual(exit, Buffer.from([0, 0, 0, 0, 0]), exit?.toString());
        assert.equal(stdout, '0\n');
      }
      assert.equal(b.log().split('a shim of an older bridge does not say who runs it').length - 1, 1, b.log());
    });

    // Last: it replaces the agent running as nobody.
    it('follows an agent that restarts as another user: the first command after it runs as the caller, not as root', async () => {
      const nobody = agents.find((a) => a.id === nobodyAgent) as AgentProcess;
      await nobody.stop();
      agents.splice(agents.indexOf(nobody), 1);
      agents.push(await startAgentProcess(nats.url, nobodyAgent, join(tmp, 'root')));
      // The bridge decided for the boot that ran as nobody (ask for nothing); the root agent of
      // the new boot answers that spawn ESTALE, and the bridge decides again.
      const result = await shimAs('nobody', tester, ids);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, '1000\n1000\n1000 27\n');
      assert.match((bridge.nobody as BridgeProcess).log(), /"agentEuid":0,"previousEuid":65534,"msg":"the agent restarted as another user"/);
    });

    it('refuses a bad --exec-user (bridge, run) or SPLITBRAIN_EXEC_USER (sidecar) as misuse, 2, before connecting anywhere', async () => {
      // Each value is checked by the unit tests (exec-user.test.ts); here, how each command reports one.
      const [bridgeCommand, runCommand, sidecar] = await Promise.all([
        run(process.execPath, [CLI, 'bridge', nats.url, '--socket', join(tmp, 'never.sock'), '--exec-user', '1:2:3']),
        run(process.execPath, [CLI, 'run', '--slave', nats.url, '--exec-user', '4294967295', 'some-image']),
        run(process.execPath, [CLI, 'sidecar', nats.url, '--dir', join(tmp, 'never')], { env: { ...process.env, SPLITBRAIN_EXEC_USER: 'root' } }),
      ]);
      assert.equal(bridgeCommand.code, 2, bridgeCommand.stderr);
      assert.match(bridgeCommand.stderr, /option '--exec-user <who>' argument '1:2:3' is invalid\. "1:2:3": expected caller, agent, UID or UID:GID/);
      assert.equal(runCommand.code, 2, runCommand.stderr);
      assert.match(runCommand.stderr, /"4294967295": ids go from 0 to 4294967294/);
      assert.equal(sidecar.code, 2, sidecar.stderr);
      assert.match(sidecar.stderr, /^splitbrain: SPLITBRAIN_EXEC_USER: "root": expected caller, agent, UID or UID:GID/);
    });
  });
});
