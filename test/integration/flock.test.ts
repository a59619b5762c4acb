/**
 * flock(2) through a mount is the slave's lock: a lock a master takes binds the slave's own
 * programs and other masters of the same slave (two CI jobs on one board's console), and a lock
 * they hold binds the master. The agent never waits for a lock; a master's caller that waits
 * gets it once it is free, and a signal ends its wait with EINTR, as on a local file
 * (mount/flock-wait.ts).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run, stopProcess, waitFor } from '../helpers/processes.js';
import { startAgentProcess, startBareAgent, startMountProcess, startSlave, type BareAgent, type MountProcess, type Slave } from '../helpers/slave.js';

/** A process of ours holding flock(2) `kind` on `path` until `release()` (its stdin closes). */
interface Holder {
  readonly child: ChildProcess;
  release(): Promise<void>;
}

const HOLD = [
  'import fcntl, sys',
  'f = open(sys.argv[1], "rb")',
  'fcntl.flock(f, fcntl.LOCK_EX if sys.argv[2] == "ex" else fcntl.LOCK_SH)',
  'print("held", flush=True)',
  'sys.stdin.read()',
].join('\n');

async function hold(path: string, kind: 'ex' | 'sh'): Promise<Holder> {
  const child = spawn('python3', ['-c', HOLD, path, kind], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout?.on('data', (chunk: Buffer) => { out += chunk.toString(); });
  await waitFor(`a ${kind} lock on ${path}`, () => out.includes('held') || child.exitCode !== null, 20_000);
  assert.equal(out, 'held\n', `the holder exited ${child.exitCode}`);
  return {
    child,
    async release() {
      if (child.exitCode !== null) return;
      child.stdin?.end();
      await Promise.race([once(child, 'exit'), stopProcess(child, 'SIGTERM', 10_000).then(() => undefined).catch(() => undefined)]);
    },
  };
}

/** flock(1)'s exit status for a try (`-n`) of `kind` on `path`: 0 got it, 1 held elsewhere. */
async function tryLock(path: string, kind: 'ex' | 'sh'): Promise<number | null> {
  return (await run('flock', ['-n', kind === 'ex' ? '-x' : '-s', path, 'true'], { timeoutMs: 20_000 })).code;
}

describe('flock(2) through the file mount', () => {
  let slave: Slave;
  let other: MountProcess;
  let otherMnt: string;

  before(async () => {
    slave = await startSlave({ id: 'flock' });
    otherMnt = join(slave.tmp, 'mnt2');
    await mkdir(otherMnt);
    other = await startMountProcess(slave.nats.url, otherMnt, ['--agent', slave.agent.id]);
  });
  after(async () => {
    await other?.stop();
    await slave?.stop();
  });

  it('a master\'s lock binds the slave, another master and another open; a waiter gets it once it is released', async () => {
    await writeFile(join(slave.root, 'console.lock'), 'lock\n');
    const mine = join(slave.mnt, 'console.lock');
    const holder = await hold(mine, 'ex');
    try {
      assert.equal(await tryLock(join(slave.root, 'console.lock'), 'sh'), 1, 'the slave\'s program got the lock the master holds');
      assert.equal(await tryLock(join(otherMnt, 'console.lock'), 'sh'), 1, 'another master got it');
      assert.equal(await tryLock(mine, 'ex'), 1, 'another open of the same master got it');
      // flock -w waits with an alarm: the signal ends the wait (EINTR), the lock still held.
      const started = Date.now();
      const timedOut = await run('flock', ['-w', '0.5', '-x', join(otherMnt, 'console.lock'), 'true'], { timeoutMs: 20_000 });
      assert.equal(timedOut.code, 1, timedOut.stderr);
      assert.ok(Date.now() - started < 10_000, 'the interrupted wait did not end');
      // A waiter on the other master gets it once the holder lets go.
      const waiter = run('flock', ['-w', '30', '-x', join(otherMnt, 'console.lock'), 'echo', 'got it'], { timeoutMs: 40_000 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await holder.release();
      const got = await waiter;
      assert.equal(got.code, 0, got.stderr);
      assert.equal(got.stdout, 'got it\n');
    } finally {
      await holder.release();
    }
    // Released with the waiter's close: free for everyone again.
    assert.equal(await tryLock(join(slave.root, 'console.lock'), 'ex'), 0);
    assert.equal(await tryLock(mine, 'ex'), 0);
  });

  it('a lock the slave\'s program holds binds the master; shared locks share', async () => {
    await writeFile(join(slave.root, 'shared.lock'), '');
    const slaveHolder = await hold(join(slave.root, 'shared.lock'), 'sh');
    try {
      assert.equal(await tryLock(join(slave.mnt, 'shared.lock'), 'ex'), 1, 'the master took an exclusive lock the slave shares');
      assert.equal(await tryLock(join(slave.mnt, 'shared.lock'), 'sh'), 0, 'a shared lock was refused beside a shared one');
    } finally {
      await slaveHolder.release();
    }
    assert.equal(await tryLock(join(slave.mnt, 'shared.lock'), 'ex'), 0);
  });

  it('unlocks by flock(LOCK_UN) with the file still open, and drops the lock when its holder is killed', async () => {
    await writeFile(join(slave.root, 'unlock.lock'), '');
    const script = [
      'import fcntl, subprocess, sys',
      'f = open(sys.argv[1], "rb")',
      'fcntl.flock(f, fcntl.LOCK_EX)',
      'print(subprocess.run(["flock", "-n", sys.argv[2], "true"]).returncode)',
      'fcntl.flock(f, fcntl.LOCK_UN)',
      'print(subprocess.run(["flock", "-n", sys.argv[2], "true"]).returncode)',
    ].join('\n');
    const result = await run('python3', ['-c', script, join(slave.mnt, 'unlock.lock'), join(slave.root, 'unlock.lock')], { timeoutMs: 20_000 });
    assert.equal(result.stdout, '1\n0\n', result.stderr);
    const holder = await hold(join(slave.mnt, 'unlock.lock'), 'ex');
    await stopProcess(holder.child, 'SIGKILL');
    await waitFor('the killed holder\'s lock to go', async () => await tryLock(join(slave.root, 'unlock.lock'), 'ex') === 0, 10_000, 100);
  });
});

describe('flock(2) locks across an agent restart', () => {
  it('takes a lock held through the mount again once the restarted agent answers', async () => {
    const slave = await startBareAgent({ id: 'flock-restart' });
    let agent = slave.agent;
    const mnt = join(slave.tmp, 'mnt');
    await mkdir(mnt);
    const mount = await startMountProcess(slave.nats.url, mnt, ['--agent', slave.agent.id, '--slave-wait', '30']);
    const onSlave = join(slave.root, 'held.lock');
    try {
      await writeFile(onSlave, '');
      const holder = await hold(join(mnt, 'held.lock'), 'ex');
      try {
        assert.equal(await tryLock(onSlave, 'ex'), 1);
        agent.child.kill('SIGKILL');
        await once(agent.child, 'exit').catch(() => undefined);
        assert.equal(await tryLock(onSlave, 'ex'), 0, 'the killed agent\'s lock outlived it');
        agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root);
        await waitFor('the lock taken again', async () => await tryLock(onSlave, 'ex') === 1, 30_000, 200);
      } finally {
        await holder.release();
      }
      await waitFor('the lock to go with its holder', async () => await tryLock(onSlave, 'ex') === 0, 10_000, 100);
    } finally {
      await mount.stop();
      await agent.stop();
      await slave.stop();
    }
  });
});

describe('flock(2) through the device mount', () => {
  let slave: BareAgent;
  let devices: MountProcess;
  let dev: string;

  before(async () => {
    slave = await startBareAgent({ id: 'flock-devices' });
    dev = join(slave.tmp, 'dev');
    await mkdir(dev);
    devices = await startMountProcess(slave.nats.url, dev, ['--agent', slave.agent.id, '--devices']);
  });
  after(async () => {
    await devices?.stop();
    await slave?.stop();
  });

  it('locks the slave\'s device: a slave program cannot take it while the master holds it', async () => {
    const holder = await hold(join(dev, 'null'), 'ex');
    try {
      assert.equal(await tryLock('/dev/null', 'ex'), 1, 'the slave\'s program got the device the master holds');
    } finally {
      await holder.release();
    }
    await waitFor('the device lock to go', async () => await tryLock('/dev/null', 'ex') === 0, 10_000, 100);
  });
});
