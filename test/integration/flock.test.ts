/**
 * flock(2) through a mount is the slave's lock: a lock a master takes binds the slave's own
 * programs and other masters of the same slave (two CI jobs on one lab's lock file), and a lock
 * they hold binds the master. The agent never waits for a lock; a master's caller that waits
 * gets it once it is free, and a signal ends its wait with EINTR, as on a local file
 * (mount/flock-wait.ts). The device mount's locks: devices.test.ts.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { flockHeld, hold, tryLock } from '../helpers/flocks.js';
import { run, stopProcess, waitFor } from '../helpers/processes.js';
import { startAgentProcess, startBareAgent, startMountProcess, startSlave, type MountProcess, type Slave } from '../helpers/slave.js';

describe('flock(2) through the file mount', () => {
  let slave: Slave;
  let other: MountProcess;
  let otherMnt: string;

  before(async () => {
    slave = await startSlave({ id: 'flock', agentArgs: ['--commit-interval', '30'] });
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
    // Released with the waiter's close (the kernel sends the release without waiting for it): free
    // for everyone again.
    await waitFor('the waiter\'s lock to go', async () => await tryLock(join(slave.root, 'console.lock'), 'ex') === 0, 10_000, 50);
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
    // Once the shared try's release (sent without waiting) is in too.
    await waitFor('the lock free for the master', async () => await tryLock(join(slave.mnt, 'shared.lock'), 'ex') === 0, 10_000, 50);
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

  it('lets go of a written file\'s lock at its close, though the agent keeps its descriptor until the next commit', async () => {
    // A pid file: written, locked, closed; the slave's program finds it free right after. The
    // kernel sends the release as close(2) returns, without waiting for it: free within a second
    // here, where the agent's next commit, which would close the descriptor, is 30 s away.
    const script = [
      'import fcntl, os, subprocess, sys, time',
      'f = open(sys.argv[1], "w")',
      'fcntl.flock(f, fcntl.LOCK_EX)',
      'f.write(str(os.getpid())); f.flush()',
      'print(subprocess.run(["flock", "-n", sys.argv[2], "true"]).returncode)',
      'f.close()',
      'deadline = time.monotonic() + 1',
      'while subprocess.run(["flock", "-n", sys.argv[2], "true"]).returncode != 0 and time.monotonic() < deadline: time.sleep(0.02)',
      'print(subprocess.run(["flock", "-n", sys.argv[2], "true"]).returncode)',
    ].join('\n');
    const result = await run('python3', ['-c', script, join(slave.mnt, 'pid.lock'), join(slave.root, 'pid.lock')], { timeoutMs: 20_000 });
    assert.equal(result.stdout, '1\n0\n', result.stderr);
  });
});

describe('flock(2) locks are leased', () => {
  it('keeps a lock its master renews past the lease, and lets go of one whose master is cut off', async () => {
    const lease = ['--lock-lease', '1.5'];
    const slave = await startSlave({ id: 'flock-lease', agentArgs: lease, mountArgs: ['--log-level', 'warn'] });
    const onSlave = join(slave.root, 'lease.lock');
    try {
      await writeFile(onSlave, '');
      const holder = await hold(join(slave.mnt, 'lease.lock'), 'ex');
      try {
        await new Promise((resolve) => setTimeout(resolve, 4500)); // three leases, renewed every 0.5 s
        assert.equal(await tryLock(onSlave, 'ex'), 1, 'a renewed lock was let go');
        // The master stops (as a machine cut off): nobody renews, and the lease ends.
        slave.mount.child.kill('SIGSTOP');
        try {
          await waitFor('the lease to end', async () => await tryLock(onSlave, 'ex') === 0, 15_000, 200);
        } finally {
          slave.mount.child.kill('SIGCONT');
        }
        // Back, it takes its lock again, nobody else having it (at its first renewal). Watched in the
        // kernel's list, not tried: a try holds the lock while it runs and would win it.
        await waitFor('the lock taken again', () => flockHeld(onSlave), 15_000, 100);
        assert.equal(await tryLock(onSlave, 'ex'), 1, 'the master did not take its lock again');
        // Another holder takes it while the master is away: the master logs the loss.
        slave.mount.child.kill('SIGSTOP');
        let other: Awaited<ReturnType<typeof hold>> | undefined;
        try {
          await waitFor('the lease to end again', async () => await tryLock(onSlave, 'ex') === 0, 15_000, 200);
          other = await hold(onSlave, 'ex');
        } finally {
          slave.mount.child.kill('SIGCONT');
        }
        await waitFor('the loss logged', () => /flock lock held through the mount was lost/.test(slave.mount.log()), 15_000, 200);
        await other.release();
      } finally {
        await holder.release();
      }
    } finally {
      await slave.stop();
    }
  });
});

describe('flock(2) locks across an agent restart', () => {
  it('takes the locks held through the file and device mounts again once the restarted agent answers', async () => {
    const slave = await startBareAgent({ id: 'flock-restart', agentArgs: ['--lock-lease', '3'] });
    let agent = slave.agent;
    const [mnt, dev] = [join(slave.tmp, 'mnt'), join(slave.tmp, 'dev')];
    await mkdir(mnt);
    await mkdir(dev);
    const mounts: MountProcess[] = [];
    const onSlave = join(slave.root, 'held.lock');
    try {
      mounts.push(await startMountProcess(slave.nats.url, mnt, ['--agent', slave.agent.id, '--slave-wait', '30']));
      mounts.push(await startMountProcess(slave.nats.url, dev, ['--agent', slave.agent.id, '--devices', '--slave-wait', '30']));
      await writeFile(onSlave, '');
      // /dev/zero: a stream that never ends, so the restarted agent opens it again (a serial port's
      // way); /dev/null: reads at end of file at once, and it is opened again all the same.
      const devices = ['/dev/zero', '/dev/null'];
      const slaveTries = async () => [await tryLock(onSlave, 'ex'), ...await Promise.all(devices.map((d) => tryLock(d, 'ex')))];
      const listedHeld = () => Promise.all([onSlave, ...devices].map(flockHeld));
      const holders = [await hold(join(mnt, 'held.lock'), 'ex'), ...await Promise.all(devices.map((d) => hold(join(dev, d.slice('/dev/'.length)), 'ex')))];
      try {
        assert.deepEqual(await slaveTries(), [1, 1, 1]);
        agent.child.kill('SIGKILL');
        await once(agent.child, 'exit').catch(() => undefined);
        assert.deepEqual(await slaveTries(), [0, 0, 0], 'the killed agent\'s locks outlived it');
        assert.deepEqual(await listedHeld(), [false, false, false], '/proc/locks still lists them');
        agent = await startAgentProcess(slave.nats.url, slave.agent.id, slave.root, ['--lock-lease', '3']);
        // Taken again once the mounts notice the new agent (at their next renewal, a third of the
        // lease, at the latest). Watched in the kernel's list, not tried: a try holds the lock while
        // it runs and could win it.
        await waitFor('the locks to be taken again', async () => (await listedHeld()).every(Boolean), 20_000, 100);
        assert.deepEqual(await slaveTries(), [1, 1, 1], 'the locks were not taken again');
      } finally {
        for (const holder of holders) await holder.release();
      }
      await waitFor('the locks to go with their holders', async () => (await slaveTries()).every((code) => code === 0), 10_000, 100);
    } finally {
      for (const mount of mounts) await mount.stop();
      await agent.stop();
      await slave.stop();
    }
  });
});
