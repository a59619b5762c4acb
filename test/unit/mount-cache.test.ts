import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AttrCache } from '../../mount/attr-cache.js';
import type { CallerGate } from '../../mount/caller-gate.js';
import { DirListings } from '../../mount/dir-listings.js';
import { MountOptionError, parseMountOptions } from '../../mount/mount-options.js';
import { PathTree } from '../../mount/path-tree.js';
import type { UnrefusedChanges } from '../../mount/unrefused-changes.js';
import { attrToWire, type Attr, type OpReply } from '../../protocol/index.js';
import type { AgentClient } from '../../transport/agent-client.js';

const file = (ino: number, nlink = 1): Attr => ({
  mode: 0o100644, nlink, uid: 0, gid: 0, size: 1, blocks: 8, atimeMs: 0, mtimeMs: 0, ctimeMs: 0, ino, rdev: 0, blksize: 4096,
  atimeNsec: 0, mtimeNsec: 0, ctimeNsec: 0,
});
const dir = (ino: number): Attr => ({ ...file(ino, 2), mode: 0o040755 });
const cache = () => new AttrCache({ attrTtlMs: 60_000, entryTtlMs: 60_000, negativeTtlMs: 60_000 });

describe('attribute cache', () => {
  it('answers "missing" for names absent from a complete listing', () => {
    const c = cache();
    c.setListing('/d', ['a']);
    assert.equal(c.lookup('/d/b'), null);
    assert.equal(c.lookup('/d/a'), undefined); // listed but attributes unknown
    c.added('/d/b', file(2));
    assert.equal(c.lookup('/d/b')?.ino, 2);
  });
  it('forgets a directory\'s size and times when an entry in it changes, and keeps its kind, mode and owner', () => {
    const c = cache();
    c.set('/d', dir(1));
    c.added('/d/x', file(2));
    assert.equal(c.lookup('/d'), undefined);
    assert.equal(c.lastKnown('/d')?.mode, 0o040755);
    c.removed('/d/x', false);
    assert.equal(c.lookup('/d'), undefined);
    assert.equal(c.lastKnown('/d')?.ino, 1);
    c.set('/d', dir(1)); // the agent's answer: sure again
    assert.equal(c.lookup('/d')?.ino, 1);
  });
  it('after a write gives no size or time, keeps the mode, and takes the size written to for a guess', () => {
    const c = cache();
    const written = file(3);
    c.set('/f', written);
    c.unsure('/f', 4096);
    assert.equal(c.lookup('/f'), undefined);
    assert.deepEqual([c.lastKnown('/f')?.mode, c.lastKnown('/f')?.size], [0o100644, 4096]);
    // A reply to a change made before the write predates it: still unsure.
    const guess = { ...file(3), size: 4096 };
    c.changed('/g', guess);
    c.unsure('/g');
    c.replace('/g', guess, file(3));
    assert.equal(c.lookup('/g'), undefined);
    assert.equal(c.lastKnown('/g')?.ino, 3);
    // The slave's own change drops it all.
    c.slaveChanged('/', 'f', false);
    assert.equal(c.lastKnown('/f'), undefined);
  });
  it('keeps no per-name copy of a hard-linked file\'s attributes, which a change through another name would leave stale', () => {
    const c = cache();
    c.set('/a', file(9, 2));
    c.changed('/b', file(9, 2));
    assert.equal(c.lookup('/a'), undefined);
    assert.equal(c.lookup('/b'), undefined);
    c.removed('/a', false);
    assert.equal(c.lookup('/a'), null);
    c.set('/b', file(9, 1)); // its last name: cached again
    assert.equal(c.lookup('/b')?.nlink, 1);
  });
  it('moves a renamed file and drops a renamed directory\'s subtree', () => {
    const c = cache();
    c.set('/f', file(3));
    c.renamed('/f', '/g');
    // Known for what the mount predicts next; its change time is the slave's, so a stat asks.
    assert.equal(c.lastKnown('/g')?.ino, 3);
    assert.equal(c.lookup('/g'), undefined);
    assert.equal(c.lookup('/f'), null);
    c.set('/dir', dir(4));
    c.set('/dir/x', file(5));
    c.renamed('/dir', '/dir2');
    assert.equal(c.lookup('/dir/x'), undefined);
  });
  it('serves a complete listing, kept current by changes made through the mount', () => {
    const c = cache();
    assert.equal(c.listing('/d'), undefined);
    c.setListing('/d', ['a', 'b']);
    c.added('/d/c', file(3));
    c.removed('/d/a', false);
    assert.deepEqual(c.listing('/d'), ['b', 'c']);
  });
  it('lets a late reply replace only the guess it answers', () => {
    const c = cache();
    const guess = file(4);
    c.set('/f', guess);
    c.replace('/f', guess, { ...file(4), size: 9 });
    assert.equal(c.lookup('/f')?.size, 9);
    const later = { ...file(4), size: 20 };
    c.set('/f', later);
    c.replace('/f', guess, { ...file(4), size: 1 }); // stale: a later change is cached
    assert.equal(c.lookup('/f')?.size, 20);
    c.forget('/f');
    c.replace('/f', later, file(4)); // forgotten: stays unknown
    assert.equal(c.lookup('/f'), undefined);
  });
  it('brings back a name whose removal the slave refused', () => {
    const c = cache();
    c.setListing('/d', ['x']);
    c.set('/d/x', file(5));
    c.removed('/d/x', false);
    assert.equal(c.lookup('/d/x'), null);
    c.mistaken('/d/x');
    assert.equal(c.lookup('/d/x'), undefined);
    assert.equal(c.listing('/d'), undefined);
  });
  it('expires entries', () => {
    const c = new AttrCache({ attrTtlMs: -1, entryTtlMs: 0, negativeTtlMs: 0 });
    c.set('/x', file(1));
    c.setMissing('/y');
    assert.equal(c.lookup('/x'), undefined);
    assert.equal(c.lookup('/y'), undefined);
  });
});

describe('attribute cache: attributes asked for behind a file\'s data', () => {
  it('are kept when nothing changed the file since they were asked for, and not after another write or change', () => {
    const c = cache();
    c.set('/f', file(3));
    c.unsure('/f', 4096);
    const asked = c.unsureAttr('/f');
    assert.ok(asked);
    c.settle('/f', asked, { ...file(3), size: 4096 });
    assert.equal(c.lookup('/f')?.size, 4096); // sure again: a stat needs no trip
    assert.equal(c.unsureAttr('/f'), undefined);
    c.unsure('/f', 10); // written again, within the size
    const again = c.unsureAttr('/f');
    assert.ok(again);
    c.unsure('/f', 10); // and again after the question went: its answer predates this write
    c.settle('/f', again, { ...file(3), size: 4096 });
    assert.equal(c.lookup('/f'), undefined);
    const third = c.unsureAttr('/f');
    assert.ok(third);
    c.changed('/f', { ...file(3), mode: 0o100600 }); // a change answered at once meanwhile
    c.settle('/f', third, { ...file(3), size: 1 });
    assert.equal(c.lookup('/f')?.mode, 0o100600);
  });
});

describe('attribute cache: subtrees', () => {
  it('a directory removed takes everything cached below it, at any depth, and nothing beside it', () => {
    const c = cache();
    c.set('/a', dir(1));
    c.set('/a/b/c/d', file(2)); // its directories above were never cached themselves
    c.setMissing('/a/b/gone');
    c.setListing('/a/b/c', ['d']);
    c.setXattrAbsent('/a/b/c/d', 'security.capability');
    c.set('/ab', file(3)); // shares the prefix "/a", is not below /a
    c.set('/a2/x', file(4));
    c.removed('/a', true);
    assert.equal(c.lastKnown('/a/b/c/d'), undefined);
    assert.equal(c.lookup('/a/b/gone'), undefined); // no longer known missing either: unknown
    assert.equal(c.listing('/a/b/c'), undefined);
    assert.equal(c.isXattrAbsent('/a/b/c/d', 'security.capability'), false);
    assert.equal(c.lookup('/ab')?.ino, 3);
    assert.equal(c.lookup('/a2/x')?.ino, 4);
    // Made again and removed again: the tree files the new entries too.
    c.set('/a/b', dir(5));
    c.set('/a/b/e', file(6));
    c.removed('/a/b', true);
    assert.equal(c.lastKnown('/a/b/e'), undefined);
  });
  it('a slave change of a directory drops its subtree, and a rename moves none of the old one', () => {
    const c = cache();
    c.set('/d/sub/f', file(2));
    c.slaveChanged('/d', null, true);
    assert.equal(c.lastKnown('/d/sub/f'), undefined);
    c.set('/from', dir(3));
    c.set('/from/f', file(4));
    c.set('/to/old', file(5));
    c.renamed('/from', '/to');
    assert.equal(c.lastKnown('/from/f'), undefined);
    assert.equal(c.lastKnown('/to/old'), undefined);
  });
  it('keeps finding subtrees after many entries came and went (the index is rebuilt from the keys)', () => {
    const c = cache();
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 1000; i++) c.set(`/r${round}/d${i % 10}/f${i}`, file(i + 10));
      c.removed(`/r${round}`, true);
      assert.equal(c.lastKnown(`/r${round}/d3/f3`), undefined);
    }
    c.set('/keep/x/y', file(7));
    for (let i = 0; i < 30_000; i++) c.forget(`/churn/${i}`);
    for (let i = 0; i < 30_000; i++) { c.set(`/churn/${i}`, file(i)); c.forget(`/churn/${i}`); }
    c.removed('/keep', true);
    assert.equal(c.lastKnown('/keep/x/y'), undefined);
  });
});

describe('path tree', () => {
  it('gives every path below a directory, a directory before its contents, and keeps the directory', () => {
    const t = new PathTree();
    t.add('/a/b/c');
    t.add('/a/b/d');
    t.add('/a/e');
    t.add('/z');
    const below = [...t.takeBelow('/a')];
    assert.deepEqual(new Set(below), new Set(['/a/b', '/a/b/c', '/a/b/d', '/a/e']));
    assert.ok(below.indexOf('/a/b') < below.indexOf('/a/b/c'));
    assert.deepEqual([...t.takeBelow('/a')], []);
    assert.deepEqual([...t.takeBelow('/')], ['/a', '/z']);
    assert.equal(t.size, 0);
  });
  it('counts each path once however often it is filed', () => {
    const t = new PathTree();
    t.add('/a/b');
    t.add('/a/b');
    t.add('/a');
    assert.equal(t.size, 2);
  });
});

describe('mount options', () => {
  it('defaults to a minute of kernel caching while coherent, a second otherwise, and names the agent', () => {
    const t = parseMountOptions([], 'a');
    assert.deepEqual(t.kernel, { attr: 60, entry: 60, negative: 60 });
    assert.equal(t.fallbackSeconds, 1);
    assert.deepEqual(t.kernelOptions, ['fsname=splitbrain:a', 'subtype=splitbrain']);
    assert.equal(t.kernelChecks, false);
    assert.equal(t.cache.attrTtlMs, 60_000);
    assert.equal(t.requestTimeoutMs, 30_000);
  });
  it('parses sshfs-style options, cache=no turning every cache off', () => {
    const t = parseMountOptions(['attr_timeout=2,entry_timeout=3', 'cache=no,timeout=5,allow_other'], 'a');
    assert.deepEqual(t.kernel, { attr: 0, entry: 0, negative: 0 });
    // Other users' permissions are the kernel's to check, as on a local disk.
    assert.ok(t.kernelOptions.includes('allow_other') && t.kernelOptions.includes('default_permissions'));
    assert.equal(t.kernelChecks, true);
    assert.equal(t.cache.attrTtlMs, 0);
    assert.equal(t.requestTimeoutMs, 5000);
  });
  it('translates absolute symlink targets by default; relative and raw on request; seen_at names where callers see the mount', () => {
    assert.equal(parseMountOptions([], 'a').symlinks, 'translate');
    assert.equal(parseMountOptions(['symlinks=raw'], 'a').symlinks, 'raw');
    assert.equal(parseMountOptions(['symlinks=raw,symlinks=relative'], 'a').symlinks, 'relative');
    for (const bad of ['symlinks', 'symlinks=', 'symlinks=absolute', 'symlinks=RAW']) {
      assert.throws(() => parseMountOptions([bad], 'a'), MountOptionError, bad);
    }
    assert.ok(!parseMountOptions(['symlinks=raw'], 'a').kernelOptions.some((o) => o.startsWith('symlinks')), 'not for the kernel');
    assert.equal(parseMountOptions([], 'a').seenAt, undefined);
    assert.equal(parseMountOptions(['seen_at=/slave'], 'a').seenAt, '/slave');
    assert.equal(parseMountOptions(['seen_at=/slave//x/../y/'], 'a').seenAt, '/slave/y');
    assert.equal(parseMountOptions(['seen_at=/'], 'a').seenAt, '/');
    for (const bad of ['seen_at', 'seen_at=', 'seen_at=slave', 'seen_at=./x']) {
      assert.throws(() => parseMountOptions([bad], 'a'), MountOptionError, bad);
    }
    assert.ok(!parseMountOptions(['seen_at=/slave'], 'a').kernelOptions.some((o) => o.startsWith('seen_at')), 'not for the kernel');
  });
  it('refuses what it does not know', () => {
    assert.throws(() => parseMountOptions(['nope'], 'a'), MountOptionError);
    assert.throws(() => parseMountOptions(['attr_timeout=-1'], 'a'), MountOptionError);
    assert.throws(() => parseMountOptions(['cache=maybe'], 'a'), MountOptionError);
    assert.throws(() => parseMountOptions(['timeout=0'], 'a'), MountOptionError);
  });
});

describe('directory listings: one asked before a change through the mount and answered after it', () => {
  // The agent lists what it holds when it gets there: a listing asked for ahead of a program (a
  // lookup's, a walk's) may be answered after the mount made a name in that directory, and
  // without that name. Kept, it would say the name is free: a lookup of it ENOENT, an O_EXCL
  // create of it answered at once and refused later.
  const setUp = () => {
    const c = cache();
    c.setListing('/', ['d']);
    c.set('/d', dir(1));
    let answer: (reply: OpReply<'fs.readdir'>) => void = () => undefined;
    const reply = new Promise<OpReply<'fs.readdir'>>((resolve) => { answer = resolve; });
    let sent: () => void = () => undefined;
    const asked = new Promise<void>((resolve) => { sent = resolve; });
    const gate = { cacheAnswers: () => true } as unknown as CallerGate;
    const unrefused = { provisional: () => false, settled: async () => undefined } as unknown as UnrefusedChanges;
    const client = { bootId: 'boot' } as unknown as AgentClient;
    const listings = new DirListings(c, gate, unrefused, client, () => { sent(); return reply; }, () => true);
    return { c, listings, asked, answer };
  };
  const caller = { uid: 0, gid: 0, pid: 1 };

  it('is not kept when a name was made in the directory meanwhile', async () => {
    const { c, listings, asked, answer } = setUp();
    const listing = listings.list('/d', caller, true);
    await asked;
    c.added('/d/x', file(2)); // a create through the mount, after the listing was asked for
    answer({ entries: [['y', attrToWire(file(3))]], cursor: null });
    await listing;
    assert.notEqual(c.listed('/d', 'x'), false, 'the listing from before the create says x is free');
    assert.equal(c.lookup('/d/x')?.ino, 2);
  });

  it('is not kept when a name was renamed in the directory meanwhile', async () => {
    const { c, listings, asked, answer } = setUp();
    c.set('/d/y', file(3));
    const listing = listings.list('/d', caller, true);
    await asked;
    c.renamed('/d/y', '/d/z');
    answer({ entries: [['y', attrToWire(file(3))]], cursor: null });
    await listing;
    assert.notEqual(c.listed('/d', 'z'), false, 'the listing from before the rename says z is free');
  });

  it('is kept when nothing changed there meanwhile', async () => {
    const { c, listings, asked, answer } = setUp();
    const listing = listings.list('/d', caller, true);
    await asked;
    c.added('/e', dir(4)); // elsewhere
    answer({ entries: [['y', attrToWire(file(3))]], cursor: null });
    await listing;
    assert.equal(c.listed('/d', 'y'), true);
    assert.equal(c.listed('/d', 'x'), false);
  });
});
