/**
 * The agent's backends (agent/backends/): which platforms have one, and the open policy of the
 * Linux files backend, which the files service relies on without checking it again.
 */
import assert from 'node:assert/strict';
import { closeSync, constants, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NoBackendError, backendFor } from '../../agent/backends/agent-backend.js';

describe('agent backends', () => {
  it('has one for Linux, with every service behind it', () => {
    const backend = backendFor('linux');
    assert.equal(backend.name, 'linux');
    assert.equal(typeof backend.devices.openDevice, 'function');
    assert.equal(typeof backend.files.openFile, 'function');
  });

  it('refuses other platforms with an error that says what the agent runs on', () => {
    assert.throws(() => backendFor('win32'), (err: unknown) => {
      assert.ok(err instanceof NoBackendError);
      assert.match(err.message, /no backend for win32/);
      assert.match(err.message, /Linux/);
      return true;
    });
  });
});

describe('Linux files backend: opening a file for the service', () => {
  const dir = mkdtempSync(join(tmpdir(), 'splitbrain-backend-unit-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const files = backendFor('linux').files;
  const { O_APPEND, O_RDONLY, O_WRONLY } = constants;

  it('writes where the master says, not at the end, when the master opened with O_APPEND', () => {
    const file = join(dir, 'appended');
    writeFileSync(file, 'abc');
    const fd = files.openFile(file, O_WRONLY | O_APPEND);
    try {
      writeSync(fd, 'X', 0);
    } finally {
      closeSync(fd);
    }
    assert.equal(readFileSync(file, 'utf8'), 'Xbc');
  });

  it('refuses a symlink in last place (ELOOP): the master resolved the path itself', () => {
    writeFileSync(join(dir, 'target'), '');
    symlinkSync('target', join(dir, 'link'));
    assert.throws(() => files.openFile(join(dir, 'link'), O_RDONLY), { code: 'ELOOP' });
  });

  it('does not wait in open for a FIFO\'s other end', () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    closeSync(files.openFile(fifo, O_RDONLY));
  });
});
