/**
 * Issue 22: the slave's serial consoles as real terminals on the master. A board (a pty pair,
 * test/fixtures/board.py) sits behind the slave's /dev/ttyBOARD; through the device mount the
 * test opens it as a pseudo-terminal of the master's, relayed to the slave's device: tcgetattr,
 * pyserial, stty, picocom and pexpect work unmodified, settings reach the slave's device,
 * select says readable only when a read will not block, and the board going away hangs the
 * terminal up as an unplugged adapter does.
 *
 * The slave's devices are a directory of this machine's (the agent's --dev-root) holding the
 * host's /dev/pts (bound) and the board's link, so the test makes and removes its own boards.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { agentOps } from '../helpers/agent-metrics.js';
import { freePort } from '../helpers/ports.js';
import { run, waitFor } from '../helpers/processes.js';
import { startBareAgent, startMountProcess, type BareAgent, type MountProcess } from '../helpers/slave.js';
import { makeDevRoot, removeDevRoot, startBoard, unplug, type Board } from '../helpers/slave-devices.js';

/** Debian's python3, which has pyserial and pexpect (scripts/setup.sh installs them). */
const PYTHON = '/usr/bin/python3';

async function python(code: string, ...args: string[]): Promise<string> {
  const result = await run(PYTHON, ['-c', code, ...args], { timeoutMs: 60_000 });
  assert.equal(result.code, 0, result.stdout + result.stderr);
  return result.stdout;
}

/**
 * Python lines that read `fd` into `got` (which they start empty) until it ends with `end`, at
 * most `size` bytes a read; the program exits with what it had if the terminal hangs up first.
 */
function readUntil(end: string, size: number): string {
  return `got = b""\nwhile not got.endswith(b"${end}"):\n  chunk = os.read(fd, ${size})\n  if not chunk: sys.exit("hung up: " + repr(got))\n  got += chunk`;
}

/** Python lines (sys, os imported): open the terminal at argv[1], send `ping`, read the answer line into `got`. */
const PING = [
  'fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)',
  'os.write(fd, b"ping\\n")',
  readUntil('\\n', 100),
];

/** Waits (5 s at most) until `stty -F device` on the slave's side shows `speed` baud. */
async function deviceSpeed(device: string, speed: string): Promise<void> {
  let line = '';
  await waitFor(`${speed} on the slave's device`, async () => {
    line = (await run('stty', ['-F', device])).stdout;
    return line.startsWith(`speed ${speed} baud`);
  }, 5000).catch(() => assert.fail(`the slave's device has: ${line.split(';')[0]}`));
}

describe('the slave\'s terminals as real terminals on the master', () => {
  let slave: BareAgent;
  let devices: MountProcess;
  let devRoot: string;
  let dev: string;
  let board: Board;
  let tty: string;
  let metricsPort: number;

  before(async () => {
    devRoot = await makeDevRoot();
    board = await startBoard(join(devRoot, 'ttyBOARD'), join(devRoot, 'heard'));
    metricsPort = await freePort();
    slave = await startBareAgent({
      id: 'terminals',
      agentArgs: ['--dev-root', devRoot, '--dev-allow', 'ttyBOARD', '--dev-allow', 'pts/*', '--dev-allow', 'fifo', '--metrics', `127.0.0.1:${metricsPort}`],
    });
    dev = join(slave.tmp, 'dev');
    await mkdir(dev);
    devices = await startMountProcess(slave.nats.url, dev, ['--agent', slave.agent.id, '--devices']);
    tty = join(dev, 'ttyBOARD');
  });
  after(async () => {
    if (board) await unplug(board);
    await devices?.stop();
    await slave?.stop();
    await removeDevRoot(devRoot);
  });

  it('is a terminal on the master: a link to a pseudo-terminal, tcgetattr works', async () => {
    const target = await readlink(tty);
    assert.match(target, /^\/dev\/pts\/\d+$/);
    assert.notEqual(target, board.device);
    // Made for the lookup, set up as the slave's device is (the board's line is raw: its flow
    // control off, which packet mode reports); nobody opened it, so the slave's device is not
    // opened either (a serial port opened raises DTR, which resets many boards).
    await new Promise((resolve) => setTimeout(resolve, 300)); // several of the relay's polls
    assert.equal(await agentOps(metricsPort, 'dev.stream'), 0, 'the device was opened on the slave with nobody holding its terminal');
    assert.equal(await python('import os, sys, termios; fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); '
      + 'print(os.isatty(fd), len(termios.tcgetattr(fd)))', tty), 'True 7\n');
  });

  it('pyserial: opens at 115200 8N1 with a timeout, read_until, a speed change and stop bits reach the slave\'s device, send_break works', async () => {
    const out = await python([
      'import serial, subprocess, sys',
      's = serial.Serial(sys.argv[1], 115200, bytesize=8, parity="N", stopbits=1, timeout=5)',
      's.write(b"ping\\n"); print(s.read_until(b"\\n").decode().strip())',
      's.baudrate = 57600; s.stopbits = 2; s.send_break(0.05)',
      's.write(b"version\\n"); print(s.read_until(b"\\n").decode().strip())',
      'print(subprocess.run(["stty", "-F", sys.argv[2]], capture_output=True, text=True).stdout.split(";")[0])',
      'print(subprocess.run(["stty", "-F", sys.argv[2], "-a"], capture_output=True, text=True).stdout.count(" cstopb"))',
      's.timeout = 0.3; print(repr(s.read(1)))',
      's.close()',
    ].join('\n'), tty, board.device);
    assert.equal(out, 'pong\nboard-fw 1.4.2\nspeed 57600 baud\n1\nb\'\'\n');
  });

  it('stty -F on the master shows what was set, and the slave\'s device has the line', async () => {
    await run('stty', ['-F', tty, '38400', '-cstopb', 'raw', '-echo']);
    assert.match((await run('stty', ['-F', tty])).stdout, /^speed 38400 baud/);
    // The line (speed) is the device's once a program has the terminal open on the master.
    const out = await python([
      'import os, sys, subprocess, time',
      ...PING,
      'print(subprocess.run(["stty", "-F", sys.argv[2]], capture_output=True, text=True).stdout.split(";")[0])',
    ].join('\n'), tty, board.device);
    assert.equal(out, 'speed 38400 baud\n');
  });

  it('a speed set just before the program closes the terminal still reaches the slave\'s device', async () => {
    // Regression: the line went to the device only at TerminalRelays' next tick, and a close
    // before it (a short script) closed the device with the old speed.
    await python([
      'import os, sys, termios',
      ...PING,
      'a = termios.tcgetattr(fd); a[4] = a[5] = termios.B19200',
      'termios.tcsetattr(fd, termios.TCSANOW, a); os.close(fd)',
    ].join('\n'), tty);
    await deviceSpeed(board.device, '19200');
  });

  it('stty -F alone (open, set, close, nothing else) sets the slave\'s device, and a program opened after has that line', async () => {
    // Regression: a terminal set while no program held it past one of the relay's 20 ms ticks
    // never reached the slave's device; it got the line only at the next open.
    for (const speed of ['4800', '230400']) {
      await run('stty', ['-F', tty, speed]);
      await deviceSpeed(board.device, speed);
    }
    const out = await python([
      'import os, sys, subprocess',
      ...PING,
      'print(got.decode().strip(), subprocess.run(["stty", "-F", sys.argv[1]], capture_output=True, text=True).stdout.split(";")[0])',
      'print(subprocess.run(["stty", "-F", sys.argv[2]], capture_output=True, text=True).stdout.split(";")[0])',
    ].join('\n'), tty, board.device);
    assert.equal(out, 'pong speed 230400 baud\nspeed 230400 baud\n');
  });

  it('echo > the terminal (open, write, close at once) reaches the slave\'s device, in order, and the next program still talks to it', async () => {
    // Regression: a program gone within one of the relay's ticks left its bytes in the master's
    // pseudo-terminal until the next open; several such in a row lost some.
    const heard = join(devRoot, 'heard');
    const before = (await readFile(heard, 'utf8')).length;
    const lines = Array.from({ length: 20 }, (_, i) => `line${i}`);
    await run('sh', ['-c', lines.map((l) => `echo ${l} > ${tty}`).join('; ')]);
    let got = '';
    await waitFor('the lines at the board', async () => {
      got = (await readFile(heard, 'utf8')).slice(before);
      return got.split('\n').length > lines.length;
    }, 10_000).catch(() => assert.fail(`the board heard: ${JSON.stringify(got)}`));
    assert.deepEqual(got.trim().split('\n').map((l) => l.trim()), lines);
    const out = await python([
      'import serial, sys',
      's = serial.Serial(sys.argv[1], 115200, timeout=5)',
      's.reset_input_buffer(); s.write(b"ping\\n"); print(s.read_until(b"pong\\n").decode().strip().split("\\n")[-1])',
      's.close()',
    ].join('\n'), tty);
    assert.equal(out, 'pong\n');
  });

  it('select with a timeout on a quiet terminal returns after the timeout with nothing readable; readable once the board answers', async () => {
    const out = await python([
      'import os, select, sys, time',
      'fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)',
      't = time.monotonic(); r, _, _ = select.select([fd], [], [], 0.4); waited = time.monotonic() - t',
      'print(r == [], 0.35 < waited < 2)',
      'os.write(fd, b"ping\\n"); r, _, _ = select.select([fd], [], [], 10); print(r == [fd], os.read(fd, 100))',
    ].join('\n'), tty);
    assert.equal(out, 'True True\nTrue b\'pong\\n\'\n');
  });

  it('pexpect over the terminal (fdspawn) and picocom through tmux work unmodified', async () => {
    assert.equal(await python([
      'import os, sys, pexpect.fdpexpect',
      'fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)',
      'p = pexpect.fdpexpect.fdspawn(fd, timeout=10); p.sendline("version"); p.expect("board-fw [0-9.]+"); print(p.after.decode())',
    ].join('\n'), tty), 'board-fw 1.4.2\n');
    const session = `sbterm${process.pid}`;
    await run('tmux', ['new-session', '-d', '-s', session, '-x', '120', '-y', '20', 'picocom', '-b', '115200', '--omap', 'crlf', '--echo', tty]);
    const picocom = Number((await run('tmux', ['list-panes', '-t', session, '-F', '#{pane_pid}'])).stdout.trim());
    try {
      await waitFor('picocom', async () => (await run('tmux', ['capture-pane', '-p', '-t', session])).stdout.includes('Terminal ready'), 10_000);
      await run('tmux', ['send-keys', '-t', session, 'ping', 'Enter']);
      await waitFor('the board\'s answer in picocom', async () => (await run('tmux', ['capture-pane', '-p', '-t', session])).stdout.includes('pong'), 10_000);
    } finally {
      await run('tmux', ['kill-session', '-t', session]);
      // kill-session returns before picocom has gone: on its way out it puts back the terminal's
      // settings as it found them, which would land on the next test's terminal.
      await waitFor('picocom to exit', async () => !existsSync(`/proc/${picocom}`), 10_000);
    }
  });

  it('tcflush drops what arrived and was not read', async () => {
    const out = await python([
      'import os, sys, termios, time, tty',
      'fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); tty.setraw(fd)',
      'os.write(fd, b"chatter\\n"); time.sleep(1)',
      'termios.tcflush(fd, termios.TCIFLUSH)',
      'os.write(fd, b"ping\\n")',
      readUntil('pong\\n', 4096),
      'print(got.count(b"noise"))',
    ].join('\n'), tty);
    assert.equal(out, '0\n');
  });

  it('what a program left unread is not handed to the next program that opens the terminal', async () => {
    // 200 lines of noise arrive; the program reads one and closes: the rest was the closed
    // session's, as on a serial port, whose next program hears only what comes after it opened.
    const first = await python([
      'import os, sys, tty',
      'fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); tty.setraw(fd)',
      'os.write(fd, b"chatter\\n")',
      readUntil('\\n', 1),
      'print(got.decode().strip())',
    ].join('\n'), tty);
    assert.equal(first, 'noise\n');
    const next = await python([
      'import os, sys',
      ...PING,
      'print(got.decode().strip())',
    ].join('\n'), tty);
    assert.equal(next, 'pong\n');
  });

  it('the board going away hangs the terminal up (end of file, POLLHUP); opened again once it is back, it works', async () => {
    const reader = spawn(PYTHON, ['-c', [
      'import os, select, sys',
      ...PING,
      'print("open", got.decode().strip(), flush=True)',
      'p = select.poll(); p.register(fd, select.POLLIN)',
      'events = p.poll(30000)',
      'print("hup", bool(events and events[0][1] & select.POLLHUP), repr(os.read(fd, 100)), flush=True)',
    ].join('\n'), tty], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    reader.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    reader.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      await waitFor('the reader to have the terminal', () => out.includes('open') || reader.exitCode !== null, 20_000);
      assert.match(out, /open pong/);
      const exited = once(reader, 'exit');
      await unplug(board);
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, out);
      assert.match(out, /hup True b''/);
    } finally {
      if (reader.exitCode === null) reader.kill('SIGKILL');
    }
    board = await startBoard(join(devRoot, 'ttyBOARD'), join(devRoot, 'heard'));
    const again = await python([
      'import os, sys',
      ...PING,
      'print(got.decode().strip())',
    ].join('\n'), tty);
    assert.equal(again, 'pong\n');
  });

  it('a device that is not a terminal: select is truthful through FUSE poll (quiet: times out; readable once data came)', async () => {
    // A writer on the slave that holds the FIFO open and writes only when told.
    const writer = spawn(PYTHON, ['-c', 'import sys; f = open(sys.argv[1], "wb", 0); sys.stdin.readline(); f.write(b"late\\n"); sys.stdin.readline()',
      join(devRoot, 'fifo')], { stdio: ['pipe', 'ignore', 'inherit'] });
    const reader = spawn(PYTHON, ['-c', [
      'import os, select, sys, time',
      'fd = os.open(sys.argv[1], os.O_RDONLY)',
      't = time.monotonic(); r, _, _ = select.select([fd], [], [], 0.4); waited = time.monotonic() - t',
      'print("quiet", r == [], 0.35 < waited < 2, flush=True)',
      'r, _, _ = select.select([fd], [], [], 20); print("then", r == [fd], os.read(fd, 100), flush=True)',
    ].join('\n'), join(dev, 'fifo')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    reader.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    reader.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    try {
      await waitFor('the quiet select', () => out.includes('quiet') || reader.exitCode !== null, 20_000);
      writer.stdin?.write('go\n');
      const [code] = (await once(reader, 'exit')) as [number | null];
      assert.equal(code, 0, out);
      assert.equal(out, 'quiet True True\nthen True b\'late\\n\'\n');
    } finally {
      writer.stdin?.end();
      if (reader.exitCode === null) reader.kill();
      await once(writer, 'exit');
    }
  });
});
