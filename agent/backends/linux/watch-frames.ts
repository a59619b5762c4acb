/**
 * The framing between the agent and its watcher (watcher/splitbrain-watch.c, whose header is the
 * reference): records of [u8 type][u32 LE length][payload], paths and names as bytes. Pure.
 */

export const enum Command {
  Add = 0x41, // 'A' path: fanotify mode answers 0 when its mark covers the directory
  AddInotify = 0x49, // 'I' path: an inotify watch in any mode
  Remove = 0x52, // 'R' i32 wd
  Sync = 0x53, // 'S' u32 token
  Reset = 0x5a, // 'Z'
}

export type WatcherRecord =
  | { type: 'hello'; mode: string; why?: string } // why: the reason fanotify is not used
  | { type: 'added'; result: number } // a watch descriptor, or -errno
  | { type: 'event'; wd: number; mask: number; name: Buffer }
  /** fanotify: the slave directory (bytes, '/' the root), the name in it ('' itself), and the
   * process that made the change (0: not known). */
  | { type: 'dir-event'; mask: number; pid: number; dir: Buffer; name: Buffer }
  | { type: 'synced'; token: number }
  | { type: 'reset' };

export function encodeCommand(command: Command, payload?: Buffer | number): Buffer {
  const body = typeof payload === 'number' ? u32(payload) : payload ?? Buffer.alloc(0);
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = command;
  out.writeUInt32LE(body.length, 1);
  body.copy(out, 5);
  return out;
}

function u32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(value >>> 0, 0);
  return b;
}

/** Most bytes one record may announce: a larger length means the stream is not ours. */
const MAX_RECORD = 1 << 20;

export class WatcherProtocolError extends Error {
  override name = 'WatcherProtocolError';
}

/** Cuts the watcher's stdout into records, whatever chunks it arrives in. */
export class RecordDecoder {
  private buffered: Buffer = Buffer.alloc(0);

  /** The whole records `chunk` completes, in order. */
  push(chunk: Buffer): WatcherRecord[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const records: WatcherRecord[] = [];
    let at = 0;
    while (this.buffered.length - at >= 5) {
      const length = this.buffered.readUInt32LE(at + 1);
      if (length > MAX_RECORD) throw new WatcherProtocolError(`a watcher record of ${length} bytes`);
      if (this.buffered.length - at < 5 + length) break;
      records.push(parse(this.buffered[at] as number, this.buffered.subarray(at + 5, at + 5 + length)));
      at += 5 + length;
    }
    this.buffered = at === this.buffered.length ? Buffer.alloc(0) : this.buffered.subarray(at);
    return records;
  }
}

function parse(type: number, payload: Buffer): WatcherRecord {
  switch (String.fromCharCode(type)) {
    case 'H': {
      const nul = payload.indexOf(0);
      if (nul < 0) return { type: 'hello', mode: payload.toString('latin1') };
      return { type: 'hello', mode: payload.subarray(0, nul).toString('latin1'), why: payload.subarray(nul + 1).toString() };
    }
    case 'a': return { type: 'added', result: payload.readInt32LE(0) };
    case 'e': return { type: 'event', wd: payload.readInt32LE(0), mask: payload.readUInt32LE(4), name: payload.subarray(8) };
    case 'f': {
      if (payload.length < 12) throw new WatcherProtocolError('a watcher event shorter than its header');
      const dirLength = payload.readUInt32LE(8);
      if (12 + dirLength > payload.length) throw new WatcherProtocolError('a watcher event whose directory overruns it');
      return {
        type: 'dir-event', mask: payload.readUInt32LE(0), pid: payload.readUInt32LE(4),
        dir: payload.subarray(12, 12 + dirLength), name: payload.subarray(12 + dirLength),
      };
    }
    case 's': return { type: 'synced', token: payload.length >= 4 ? payload.readUInt32LE(0) : 0 };
    case 'z': return { type: 'reset' };
    default: throw new WatcherProtocolError(`unknown watcher record type ${type}`);
  }
}
