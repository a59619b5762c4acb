/**
 * The change feed's pure parts: what an inotify mask means (agent/watch/change-kinds.ts), the
 * watcher's framing (watch-frames.ts), the LRU watch set (watch-set.ts), the wire message, and
 * how the feed's remembered paths are bounded (change-feed.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IN, meaningOf } from '../../agent/watch/change-kinds.js';
import { Command, RecordDecoder, WatcherProtocolError, encodeCommand } from '../../agent/backends/linux/watch-frames.js';
import { WatchSet, dirsOf } from '../../agent/watch/watch-set.js';
import { dropOldestTenth } from '../../agent/watch/change-feed.js';
import { ProtocolError, decodeChangeMessage, encodeChangeMessage, firstSeqOf, nameFromBytes } from '../../protocol/index.js';

describe('change kinds', () => {
  it('names in a directory: entry for what rebinds a name, attr for what changes an inode', () => {
    for (const mask of [IN.CREATE, IN.DELETE, IN.MOVED_FROM, IN.MOVED_TO, IN.CREATE | 0x40000000]) {
      assert.deepEqual(meaningOf('/d', mask, 'x'), { changes: [['/d', 'x', 'entry']], ended: false });
    }
    for (const mask of [IN.ATTRIB, IN.MODIFY, IN.CLOSE_WRITE]) {
      assert.deepEqual(meaningOf('/d', mask, 'x'), { changes: [['/d', 'x', 'attr']], ended: false });
    }
  });

  it('the directory itself: its entry or attributes in its parent; the root has none', () => {
    assert.deepEqual(meaningOf('/a/b', IN.ATTRIB, ''), { changes: [['/a', 'b', 'attr']], ended: false });
    assert.deepEqual(meaningOf('/', IN.ATTRIB, ''), { changes: [['/', null, 'attr']], ended: false });
    assert.deepEqual(meaningOf('/a/b', IN.DELETE_SELF, ''), { changes: [['/a', 'b', 'entry'], ['/a/b', null, 'entry']], ended: true });
    assert.deepEqual(meaningOf('/a/b', IN.MOVE_SELF, ''), { changes: [['/a', 'b', 'entry'], ['/a/b', null, 'entry']], ended: true });
    assert.deepEqual(meaningOf('/a/b', IN.IGNORED, ''), { changes: [['/a/b', null, 'entry']], ended: true });
    assert.deepEqual(meaningOf('/', IN.DELETE_SELF, ''), { changes: [['/', null, 'entry']], ended: true });
  });
});

describe('watcher frames', () => {
  it('encodes commands as type, little-endian length, payload', () => {
    assert.deepEqual([...encodeCommand(Command.Add, Buffer.from('/x'))], [0x41, 2, 0, 0, 0, 0x2f, 0x78]);
    assert.deepEqual([...encodeCommand(Command.Sync, 258)], [0x53, 4, 0, 0, 0, 2, 1, 0, 0]);
    assert.deepEqual([...encodeCommand(Command.Reset)], [0x5a, 0, 0, 0, 0]);
    assert.deepEqual([...encodeCommand(Command.AddInotify, Buffer.from('/x'))], [0x49, 2, 0, 0, 0, 0x2f, 0x78]);
  });

  it('decodes records split anywhere, names as bytes', () => {
    const event = Buffer.concat([Buffer.from([0x65, 11, 0, 0, 0]), Buffer.from([7, 0, 0, 0, 0, 1, 0, 0]), Buffer.from([0x66, 0xff, 0x6f])]);
    const added = Buffer.from([0x61, 4, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
    const all = Buffer.concat([Buffer.from([0x48, 7, 0, 0, 0]), Buffer.from('inotify'), event, added, Buffer.from([0x7a, 0, 0, 0, 0])]);
    for (let cut = 0; cut <= all.length; cut++) {
      const decoder = new RecordDecoder();
      const records = [...decoder.push(all.subarray(0, cut)), ...decoder.push(all.subarray(cut))];
      assert.deepEqual(records, [
        { type: 'hello', mode: 'inotify' },
        { type: 'event', wd: 7, mask: IN.CREATE, name: Buffer.from([0x66, 0xff, 0x6f]) },
        { type: 'added', result: -2 },
        { type: 'reset' },
      ]);
    }
  });

  it('decodes fanotify events (directory and name as bytes) and the hello saying why not fanotify', () => {
    const why = Buffer.from('inotify\0fanotify_init: Operation not permitted');
    const dirEvent = Buffer.concat([Buffer.from([0x66, 18, 0, 0, 0]), Buffer.from([0x00, 0x01, 0x00, 0x40, 0x39, 0x30, 0, 0, 3, 0, 0, 0]), Buffer.from('/d\xfe', 'latin1'), Buffer.from('a\xffb', 'latin1')]);
    const records = new RecordDecoder().push(Buffer.concat([Buffer.from([0x48, why.length, 0, 0, 0]), why, dirEvent]));
    assert.deepEqual(records, [
      { type: 'hello', mode: 'inotify', why: 'fanotify_init: Operation not permitted' },
      { type: 'dir-event', mask: IN.CREATE | 0x4000_0000, pid: 12345, dir: Buffer.from('/d\xfe', 'latin1'), name: Buffer.from('a\xffb', 'latin1') },
    ]);
    assert.throws(() => new RecordDecoder().push(Buffer.from([0x66, 8, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0])), WatcherProtocolError);
  });

  it('refuses what is not its framing', () => {
    assert.throws(() => new RecordDecoder().push(Buffer.from([0x21, 0, 0, 0, 0])), WatcherProtocolError);
    assert.throws(() => new RecordDecoder().push(Buffer.from([0x65, 0, 0, 0, 0x7f])), WatcherProtocolError);
  });
});

describe('watch set', () => {
  it('evicts the least recently used directory past its limit, and drops its watch', () => {
    const set = new WatchSet(2);
    set.add('/a', 1);
    set.add('/b', 2);
    assert.ok(set.touch('/a'));
    set.add('/c', 3);
    assert.deepEqual(set.evict(), { dirs: ['/b'], unused: [2] });
    assert.equal(set.touch('/b'), false);
    assert.equal(set.size, 2);
  });

  it('two paths of one directory share its watch, and both are named', () => {
    const set = new WatchSet(8);
    set.add('/a/', 1);
    set.add('/l/../a', 1);
    assert.equal(set.size, 1);
    assert.deepEqual(dirsOf(set.byDescriptor(1) as never), ['/a']);
    const dropped = set.drop(1);
    assert.equal(dropped?.keys.size, 2);
    assert.equal(set.touch('/a/'), false);
  });
});

describe('change message', () => {
  it('round-trips, and its first seq counts the lost mark', () => {
    const message = { boot: 'b', seq: 10, changes: [['/d', 'x', 'entry'], ['/', null, 'attr']] as [string, string | null, 'entry' | 'attr'][], state: 'degraded' as const, lost: 'overflow' as const };
    assert.deepEqual(decodeChangeMessage(encodeChangeMessage(message)), message);
    assert.equal(firstSeqOf(message), 8);
    assert.equal(firstSeqOf({ ...message, changes: [], lost: undefined }), 11);
  });

  it('carries names that are not UTF-8 as bin, read back as the same surrogateescape strings', () => {
    const dir = nameFromBytes(Buffer.from('/d\xfe', 'latin1'));
    const name = nameFromBytes(Buffer.from('a\xffb', 'latin1'));
    const message = { boot: 'b', seq: 2, changes: [[dir, name, 'entry'], ['/d', 'plain', 'attr']] as [string, string | null, 'entry' | 'attr'][], state: 'live' as const };
    const bytes = encodeChangeMessage(message);
    assert.ok(Buffer.from(bytes).includes(Buffer.from([0xc4, 3, 0x61, 0xff, 0x62])), 'the name as bin');
    assert.deepEqual(decodeChangeMessage(bytes), message);
  });

  it('refuses a malformed one', () => {
    const bad = encodeChangeMessage({ boot: 'b', seq: 1, changes: [], state: 'live' });
    bad[bad.length - 1] = 0xc0;
    assert.throws(() => decodeChangeMessage(bad), ProtocolError);
  });
});

describe('remembered paths', () => {
  it('a full map forgets its oldest tenth, in the order of use, however often it was used', () => {
    const map = new Map<string, number>();
    // Touched as madeBy touches them (delete, then set: the most recent last), many times over.
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 1000; i++) {
        const key = `/d/f${(i * 7 + round) % 1000}`;
        map.delete(key);
        map.set(key, round);
      }
    }
    const order = [...map.keys()];
    dropOldestTenth(map);
    assert.equal(map.size, 900);
    assert.deepEqual([...map.keys()], order.slice(100));
    dropOldestTenth(map);
    assert.deepEqual([...map.keys()], order.slice(190));
    const one = new Map([['/only', 1]]);
    dropOldestTenth(one);
    assert.equal(one.size, 0);
  });
});
