/**
 * The agent fuzz test's message source (test/integration/hostile-input.test.ts): from a seeded
 * PRNG, random bytes, truncated and corrupted requests, msgpack of the wrong shape or with
 * hostile length headers, and well-formed requests for every op with hostile values, each with
 * the errno the agent must answer it with when the answer is certain.
 *
 * Safety: the agent under test runs as whoever runs the tests, often root. No generated request
 * may make it create a device node with a nonzero number (it could name a disk, /dev/mem...),
 * or a FIFO (an open of one waits for its other end), so fs.mknod is only ever sent with rdev 0
 * and never with S_IFIFO, and is never corrupted at random.
 */
import { Decoder } from '@msgpack/msgpack';
import {
  DISCOVER_SUBJECT, OP_NAMES, FORWARDED_SIGNALS, S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, S_IFSOCK,
  PROTOCOL_VERSION, SlaveError, encodeRequest, opSubject, ops, type OpName, type OpRequest,
} from '../../protocol/index.js';
import {
  deepNesting, edgeInteger, hostileDevicePath, hostilePath, hugeHeader, pack, randomString, randomValue, rawMap,
} from './hostile-values.js';
import { check } from '../../protocol/schema.js';
import type { SeededRandom } from './seeded-random.js';

export interface HostileMessage {
  /** Which generator made it, for the report. */
  kind: string;
  subject: string;
  data: Uint8Array;
  /** The errnos one of which the reply must carry; undefined when success is possible too. */
  errnos: readonly string[] | undefined;
  /** The op whose reply schema a successful reply must match. */
  op: OpName;
  /** False: published without a reply subject (the agent must just stay up). */
  reply: boolean;
}

/** What the test learned from the agent's replies, so requests can name real handles. */
export interface FuzzWorld {
  readonly agentId: string;
  readonly bootId: string;
  readonly handles: number[];
  readonly cursors: number[];
}

type Args = Record<string, unknown>;

const roundTrip = new Decoder();

export class HostileMessages {
  private seq = 0;
  private readonly table: Record<OpName, () => Args>;

  constructor(private readonly rng: SeededRandom, private readonly world: FuzzWorld) {
    this.table = this.argumentTable();
  }

  next(): HostileMessage {
    const message = this.pick();
    message.reply = !this.rng.chance(0.03);
    return message;
  }

  /** A message of exactly `size` bytes: the largest the bus carries. */
  ofSize(size: number): HostileMessage {
    const rng = this.rng;
    const op = rng.pick(OP_NAMES);
    switch (rng.int(4)) {
      case 0: return this.make('max-bytes', op, rng.bytes(size), ['EPROTO']);
      case 1: { // a valid write filling the message
        const [fh, offset, id] = [this.handle(), this.offset(), this.id()];
        const head = encodeRequest('fs.write', id, { fh, offset, data: new Uint8Array(0) });
        const data = new Uint8Array(size - head.length - 3); // bin8 -> bin32 adds 3 bytes
        const request = encodeRequest('fs.write', id, { fh, offset, data });
        return this.make('max-write', 'fs.write', request.length === size ? request : rng.bytes(size), request.length === size ? undefined : ['EPROTO']);
      }
      case 2: { // an array of a million nils: each element costs the decoder 8 bytes for 1
        const out = new Uint8Array(size).fill(0xc0);
        out.set([0xdd, ...u32(size - 5)], 0);
        return this.make('max-array', op, out, ['EPROTO']);
      }
      default:
        return this.make('max-nesting', op, deepNesting(size - 1, 'array'), ['EPROTO']);
    }
  }

  private pick(): HostileMessage {
    const rng = this.rng;
    const op = rng.pick(OP_NAMES);
    const roll = rng.int(100);
    if (roll < 10) return this.make('bytes', op, rng.bytes(rng.size(2048)), ['EPROTO']);
    if (roll < 20) {
      const whole = this.request(op, this.argsFor(op));
      return this.make('truncated', op, whole.subarray(0, rng.int(whole.length)), ['EPROTO']);
    }
    if (roll < 28) return this.flipped(op);
    if (roll < 35) return this.wrongEnvelope(op);
    if (roll < 50) return this.wrongArgs(op);
    if (roll < 55) return this.make('huge-header', op, this.hugeHeaderAnywhere(), ['EPROTO']);
    if (roll < 57) {
      const nested = deepNesting(rng.size(100_000), rng.chance(0.5) ? 'array' : 'map');
      // No request is an array; a nested map may be an op's (ignored) extra field.
      if (rng.chance(0.5)) return this.make('deep-nesting', op, nested, ['EPROTO']);
      return this.make('deep-nesting', op, rawMap([['v', pack(1)], ['id', pack(this.id())], ['a', nested]]), nested[0] === 0x91 ? ['EPROTO'] : undefined);
    }
    if (roll < 61) {
      const args = this.argsFor(op);
      return this.make('wrong-boot', op, this.request(op, args, rng.pick(['00000000-0000-0000-0000-000000000000', '', randomString(rng, 36)])),
        this.valid(op, args) ? ['ESTALE'] : ['EPROTO']);
    }
    if (roll < 65) {
      const v = rng.pick([PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 2, 255, 0x7fffffff, 2 ** 40]);
      const args = rng.chance(0.5) ? this.argsFor(op) : randomValue(rng);
      // Whatever its arguments, if it decodes at all (a __proto__ key does not).
      return this.make('future-version', op, pack({ v, id: this.id(), a: args }), this.decodes(args) ? ['EPROTONOSUPPORT'] : ['EPROTO']);
    }
    if (roll < 70) return this.unknownOp();
    const args = this.argsFor(op);
    const discover = op === 'agent.hello' && rng.chance(0.5);
    const message = this.make('hostile-values', op, this.request(op, args), this.valid(op, args) ? undefined : ['EPROTO']);
    if (discover) message.subject = DISCOVER_SUBJECT;
    return message;
  }

  private make(kind: string, op: OpName, data: Uint8Array, errnos: readonly string[] | undefined): HostileMessage {
    return { kind, subject: opSubject(this.world.agentId, op), data, errnos, op, reply: true };
  }

  /**
   * Mostly fresh; sometimes (`mayRepeat`) an id seen before, as a retry or a replay attack would
   * send: the agent then answers an op that must not run twice from its duplicate request cache,
   * whatever this request says, so only requests whose answer may be anything repeat ids.
   */
  private id(mayRepeat = false): string {
    const n = mayRepeat && this.rng.chance(0.05) ? this.rng.int(this.seq + 1) : ++this.seq;
    return `fuzz:${n}`;
  }

  private request(op: OpName, args: Args, hb?: string): Uint8Array {
    if (hb !== undefined) return pack({ v: 1, id: this.id(), hb, a: args });
    const id = this.id(true);
    const handleBoot = this.rng.chance(0.3) ? this.world.bootId : undefined;
    try {
      return encodeRequest(op, id, args as OpRequest<typeof op>, handleBoot);
    } catch (err) {
      // A lone surrogate that is no escaped byte: our encoder refuses it (EILSEQ); a hostile
      // master sends it anyway, as whatever msgpack makes of it.
      if (!(err instanceof SlaveError && err.errnoName === 'EILSEQ')) throw err;
      return pack({ v: PROTOCOL_VERSION, id, ...(handleBoot === undefined ? {} : { hb: handleBoot }), a: args });
    }
  }

  private decodes(value: unknown): boolean {
    try {
      roundTrip.decode(pack(value));
      return true;
    } catch {
      return false; // a __proto__ key: no decoder takes it
    }
  }

  /** Whether the agent must accept `args`: the op's schema, applied to them as decoded. */
  private valid(op: OpName, args: unknown): boolean {
    return this.decodes(args) && check(ops[op].req, roundTrip.decode(pack(args)) ?? {}).ok;
  }

  /** A well-formed request with up to four bytes changed. fs.mknod is left alone: see the header. */
  private flipped(op: OpName): HostileMessage {
    if (op === 'fs.mknod') return this.wrongArgs(op);
    const data = Uint8Array.from(this.request(op, this.argsFor(op)));
    for (let i = 1 + this.rng.int(4); i > 0 && data.length > 0; i--) data[this.rng.int(data.length)] = this.rng.int(256);
    return this.make('flipped', op, data, undefined);
  }

  private wrongEnvelope(op: OpName): HostileMessage {
    const rng = this.rng;
    const a = this.argsFor(op);
    const id = this.id();
    // Anything at all: when it happens to be a map with a `v` over ours, that is the answer.
    if (rng.chance(0.1)) return this.make('wrong-envelope', op, pack(randomValue(rng)), ['EPROTO', 'EPROTONOSUPPORT']);
    const variants: unknown[] = [
      [1, id, a], { id, a }, { v: 1, a }, { v: '1', id, a }, { v: 1.5, id, a }, { v: null, id, a },
      { v: 1, id: 7, a }, { v: 1, id: 'x'.repeat(129), a }, { v: 1, id, hb: 7, a }, { v: 1, id, hb: 'x'.repeat(65), a },
      { v: 1, id: rng.bytes(8), a }, { v: Number.NaN, id, a },
    ];
    return this.make('wrong-envelope', op, pack(rng.pick(variants)), ['EPROTO']);
  }

  /** The op's arguments with one field replaced by any value, or removed, or not an object. */
  private wrongArgs(op: OpName): HostileMessage {
    const rng = this.rng;
    for (let attempt = 0; attempt < 8; attempt++) {
      let args: unknown = { ...this.argsFor(op) };
      const keys = Object.keys(args as Args);
      if (keys.length === 0 || rng.chance(0.1)) args = randomValue(rng);
      else if (rng.chance(0.2)) delete (args as Args)[rng.pick(keys)];
      else (args as Args)[rng.pick(keys)] = randomValue(rng);
      // Only truly malformed ones: a mutant the schema accepts could be an mknod of a device.
      if (!this.valid(op, args)) return this.make('wrong-args', op, pack({ v: 1, id: this.id(), a: args }), ['EPROTO']);
    }
    return this.make('wrong-args', op, this.rng.bytes(3), ['EPROTO']);
  }

  /** A valid envelope with a hostile length header in place of a field, or the whole message. */
  private hugeHeaderAnywhere(): Uint8Array {
    const rng = this.rng;
    const bad = hugeHeader(rng);
    switch (rng.int(4)) {
      case 0: return bad;
      case 1: return rawMap([['v', pack(1)], ['id', bad], ['a', pack({})]]);
      case 2: return rawMap([['v', pack(1)], ['id', pack(this.id())], ['a', bad]]);
      default: return rawMap([['v', pack(1)], ['id', pack(this.id())], ['a', rawMap([[rng.pick(['path', 'fh', 'data']), bad]])]]);
    }
  }

  private unknownOp(): HostileMessage {
    const rng = this.rng;
    const op = rng.pick([
      'fs.teleport', 'fs', 'fs.read.more', 'agent', 'agent.hello.x', '__proto__', 'constructor', 'toString',
      'hasOwnProperty', 'fs.__proto__', 'proc.spawnx', 'dev', 'x.y.z.w', 'FS.READ', '_discover',
      Array.from({ length: 1 + rng.int(4) }, () => randomToken(rng)).join('.'),
    ]);
    const data = rng.chance(0.5) ? pack({ v: 1, id: this.id(), a: {} }) : rng.bytes(rng.size(256));
    return { kind: 'unknown-op', subject: opSubject(this.world.agentId, op), data, errnos: ['ENOSYS'], op: 'agent.hello', reply: true };
  }

  // ---- argument values ----

  private handle(): number {
    const known = this.world.handles;
    if (known.length > 0 && this.rng.chance(0.5)) return this.rng.pick(known);
    return this.rng.chance(0.5) ? this.rng.int(16) : edgeInteger(this.rng);
  }

  private offset(): number {
    return this.rng.chance(0.5) ? this.rng.int(65536) : edgeInteger(this.rng);
  }

  private count(): number {
    return this.rng.chance(0.5) ? this.rng.size(1 << 20) : edgeInteger(this.rng);
  }

  private data(): Uint8Array {
    return this.rng.bytes(this.rng.chance(0.02) ? 70_000 : this.rng.size(4096));
  }

  private ownerId(): number {
    return this.rng.pick([-1, 0, 65534, 1000, -2, 0xffffffff, edgeInteger(this.rng)]);
  }

  private time(): unknown {
    return this.rng.pick(['now', 'omit', 0, -1, Date.now(), 1e15, -1e15, 1e20, 8.64e15 + 1, 1.5, 'later']);
  }

  private flags(): number {
    return this.rng.chance(0.7) ? this.rng.int(4) | (this.rng.int(0x4000) << 2) : edgeInteger(this.rng);
  }

  private mode(): number {
    return this.rng.chance(0.8) ? this.rng.int(0o10000) : edgeInteger(this.rng);
  }

  /** See the header: no FIFOs, and device numbers only 0 (no such device). */
  private mknodArgs(): Args {
    const type = this.rng.pick([S_IFREG, 0, S_IFDIR, S_IFLNK, S_IFSOCK, S_IFCHR, S_IFBLK, 0o030000, 0o170000]);
    return { path: hostilePath(this.rng), mode: type | this.rng.int(0o10000), rdev: 0 };
  }

  private argsFor(op: OpName): Args {
    return this.table[op]();
  }

  /** Every op's arguments, with values chosen to hurt. */
  private argumentTable(): Record<OpName, () => Args> {
    const r = this.rng;
    const path = () => hostilePath(r);
    const dev = () => hostileDevicePath(r);
    const fh = () => this.handle();
    const bool = () => (r.chance(0.95) ? r.chance(0.5) : r.int(2));
    return {
      'agent.hello': () => (r.chance(0.8) ? {} : { extra: randomValue(r) }),
      'agent.stats': () => (r.chance(0.8) ? {} : { extra: randomValue(r) }),
      'agent.link': () => (r.chance(0.8) ? {} : { extra: randomValue(r) }),
      // Inner requests that are garbage, of ops that do not exist, or not a list at all.
      'agent.batch': () => (r.chance(0.8)
        ? { requests: Array.from({ length: 1 + r.int(4) }, () => [r.pick(['fs.getattr', 'fs.unlink', 'agent.batch', 'no.such']), pack(randomValue(r))]) }
        : { requests: randomValue(r) }),
      'fs.getattr': () => ({ path: path() }),
      'fs.fgetattr': () => ({ fh: fh() }),
      'fs.access': () => ({ path: path(), mode: r.chance(0.8) ? r.int(8) : edgeInteger(r) }),
      'fs.statfs': () => ({ path: path() }),
      'fs.changes': () => (r.chance(0.8) ? {} : { extra: randomValue(r) }),
      'fs.readdir': () => (r.chance(0.7) || this.world.cursors.length === 0
        ? { path: path() } : { cursor: r.chance(0.5) ? r.pick(this.world.cursors) : edgeInteger(r) }),
      'fs.open': () => ({ path: path(), flags: this.flags() }),
      'fs.create': () => ({ path: path(), flags: this.flags(), mode: this.mode() }),
      'fs.read': () => ({ fh: fh(), offset: this.offset(), length: this.count() }),
      'fs.write': () => ({ fh: fh(), offset: this.offset(), data: this.data() }),
      'fs.commit': () => ({ force: r.chance(0.05) }),
      'fs.flush': () => ({ fh: fh() }),
      'fs.fsync': () => ({ fh: fh(), datasync: bool() }),
      'fs.release': () => ({ fh: fh() }),
      'fs.flock': () => ({ fh: fh(), lock: r.pick(['sh', 'ex', 'un', 'nb', 1, null]) }),
      'fs.ftruncate': () => ({ fh: fh(), size: this.offset() }),
      // Lengths a test's disk can hold (or past any file's size: EFBIG), whatever the mode.
      'fs.fallocate': () => ({
        fh: fh(), mode: r.chance(0.8) ? r.pick([0, 1, 3, 16, 17]) : edgeInteger(r), offset: this.offset(),
        length: r.chance(0.8) ? r.size(1 << 20) : r.pick([0, -1, 2 ** 60, Number.MAX_SAFE_INTEGER, 2 ** 64]),
      }),
      'fs.copyrange': () => ({ source: fh(), sourceOffset: this.offset(), fh: fh(), offset: this.offset(), length: r.chance(0.8) ? r.size(1 << 20) : edgeInteger(r) }),
      'fs.lseek': () => ({ fh: fh(), offset: this.offset(), whence: r.chance(0.8) ? r.pick([3, 4]) : edgeInteger(r) }),
      'fs.fchmod': () => ({ fh: fh(), mode: this.mode() }),
      'fs.fchown': () => ({ fh: fh(), uid: this.ownerId(), gid: this.ownerId() }),
      'fs.futimens': () => ({ fh: fh(), atime: this.time(), mtime: this.time() }),
      'fs.truncate': () => ({ path: path(), size: this.offset() }),
      'fs.unlink': () => ({ path: path() }),
      'fs.rename': () => ({ from: path(), to: path() }),
      'fs.link': () => ({ existing: path(), path: path() }),
      'fs.symlink': () => ({ target: r.chance(0.5) ? path().slice(r.int(2)) : randomString(r, r.size(4100)), path: path() }),
      'fs.readlink': () => ({ path: path() }),
      'fs.mkdir': () => ({ path: path(), mode: this.mode() }),
      'fs.rmdir': () => ({ path: path() }),
      'fs.chmod': () => ({ path: path(), mode: this.mode() }),
      'fs.chown': () => ({ path: path(), uid: this.ownerId(), gid: this.ownerId() }),
      'fs.utimens': () => ({ path: path(), atime: this.time(), mtime: this.time() }),
      'fs.mknod': () => this.mknodArgs(),
      'fs.getxattr': () => ({ path: path(), name: xattrName(r) }),
      'fs.setxattr': () => ({ path: path(), name: xattrName(r), value: this.data(), flags: r.chance(0.8) ? r.int(4) : edgeInteger(r) }),
      'fs.listxattr': () => ({ path: path() }),
      'fs.removexattr': () => ({ path: path(), name: xattrName(r) }),
      'proc.spawn': () => ({
        argv: r.chance(0.8) ? [r.pick(['sh', 'true', '/bin/sh', '../../bin/sh', 'rm'])] : [randomString(r, r.size(64))],
        env: r.chance(0.8) ? {} : { [randomString(r, 1 + r.int(8))]: randomString(r, r.size(64)) },
        cwd: path(), pty: r.chance(0.5) ? null : { rows: r.int(70000), cols: r.int(70000) },
        output: r.pick(['_INBOX.fuzz', `splitbrain.${this.world.agentId}.fs.unlink`, 'a..b', '>', 'x'.repeat(300)]),
        window: this.count(),
        ...(r.chance(0.2) ? {
          uid: this.ownerId(), gid: this.ownerId(),
          groups: Array.from({ length: r.pick([0, 1, 3, 4096, 4097]) }, () => this.ownerId()),
        } : {}),
      }),
      'proc.stdin': () => ({ procId: fh(), data: this.data(), eof: bool() }),
      'proc.signal': () => ({ procId: fh(), signal: r.chance(0.8) ? r.pick(FORWARDED_SIGNALS) : r.pick(['SIGSTOP', 'KILL', '9', '']) }),
      'proc.resize': () => ({ procId: fh(), rows: r.int(70000), cols: r.int(70000) }),
      'proc.hangup': () => ({ procId: fh() }),
      'proc.credit': () => ({ procId: fh(), bytes: this.count(), ...(r.chance(0.5) ? { received: this.count() } : {}) }),
      'proc.resend': () => ({ procId: fh(), from: this.count() }),
      'proc.keepalive': () => ({ procIds: Array.from({ length: r.chance(0.01) ? 65536 + r.int(2) : r.size(64) }, () => fh()) }),
      'dev.getattr': () => ({ path: dev(), ...(r.chance(0.5) ? { terminals: bool() } : {}) }),
      'dev.readdir': () => ({ path: dev(), ...(r.chance(0.5) ? { terminals: bool() } : {}) }),
      'dev.readlink': () => ({ path: dev() }),
      'dev.open': () => ({ path: dev(), flags: this.flags() }),
      'dev.read': () => ({ fh: fh(), length: this.count(), waitMs: r.chance(0.8) ? r.int(100) : edgeInteger(r) }),
      'dev.write': () => ({ fh: fh(), data: this.data() }),
      'dev.release': () => ({ fh: fh() }),
      'dev.flock': () => ({ fh: fh(), lock: r.pick(['sh', 'ex', 'un', 'nb', 1, null]) }),
      'dev.stream': () => ({
        path: dev(), flags: this.flags(), terminal: bool(), window: this.count(),
        output: r.pick(['_INBOX.fuzz', `splitbrain.${this.world.agentId}.dev.write`, `splitbrain._out.${this.world.agentId}.fuzz`, '>', 'x'.repeat(300)]),
      }),
      'dev.input': () => ({ fh: fh(), seq: this.count(), data: this.data(), credit: this.count(), received: this.count() }),
      'dev.credit': () => ({ fh: fh(), bytes: this.count(), received: this.count() }),
      'dev.resend': () => ({ fh: fh(), from: this.count() }),
      'dev.tcgetattr': () => ({ path: dev() }),
      'dev.termios': () => ({
        fh: fh(), ispeed: r.chance(0.5) ? null : this.count(), ospeed: r.chance(0.5) ? null : this.count(),
        cflagBits: this.count(), cflagMask: this.count(),
      }),
      'dev.setline': () => ({
        path: dev(), ispeed: r.chance(0.5) ? null : this.count(), ospeed: r.chance(0.5) ? null : this.count(),
        cflagBits: this.count(), cflagMask: this.count(),
      }),
      'dev.flush': () => ({ fh: fh(), queue: r.chance(0.9) ? r.pick(['input', 'output', 'both']) : randomString(r, 6) }),
      'dev.break': () => ({ fh: fh(), ms: r.chance(0.8) ? r.int(300) : edgeInteger(r) }),
    };
  }
}

function xattrName(rng: SeededRandom): string {
  return rng.pick(['user.fuzz', 'user.a', 'trusted.fuzz', 'security.fuzz', 'system.posix_acl_access', 'bogus', '',
    `user.${'x'.repeat(250)}`, `user.${'x'.repeat(300)}`, 'user.a\0b', `user.${randomString(rng, 8)}`]);
}

function randomToken(rng: SeededRandom): string {
  const chars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-';
  return Array.from({ length: 1 + rng.int(12) }, () => chars[rng.int(chars.length)]).join('');
}

function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}
