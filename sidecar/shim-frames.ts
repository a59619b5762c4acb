/**
 * The frames between the exec shim and the bridge, as shim/README.md specifies them: 1 byte
 * type, 4 bytes big-endian length, payload (at most 1 MiB). Pure: no sockets here.
 *
 *   shim --START, STDIN, STDIN_EOF, SIGNAL, WINSIZE--> bridge
 *   bridge --STDOUT, STDERR, EXIT, ERROR--> shim
 */

export const FrameType = {
  Start: 0x01,
  Stdin: 0x02,
  StdinEof: 0x03,
  Signal: 0x04,
  Winsize: 0x05,
  Stdout: 0x81,
  Stderr: 0x82,
  Exit: 0x83,
  Error: 0x84,
} as const;

export const MAX_FRAME_PAYLOAD = 1024 * 1024;
const HEADER = 5;
/** START's fixed part by version: v1 version, flags, rows, cols, argc, envc; v2 adds uid, gid, ngroups. */
const START_FIXED: Record<number, number> = { 1: 14, 2: 26 };
const START_VERSIONS = Object.keys(START_FIXED).join(' and ');

export class FrameError extends Error {
  override name = 'FrameError';
}

export interface Frame {
  type: number;
  payload: Buffer;
}

/** Splits a byte stream into frames; refuses oversized ones before buffering them. */
export class FrameDecoder {
  private buffered: Buffer[] = [];
  private length = 0;

  push(chunk: Buffer): Frame[] {
    this.buffered.push(chunk);
    this.length += chunk.length;
    const frames: Frame[] = [];
    let data = this.buffered.length === 1 ? chunk : Buffer.concat(this.buffered, this.length);
    while (data.length >= HEADER) {
      const size = data.readUInt32BE(1);
      if (size > MAX_FRAME_PAYLOAD) throw new FrameError(`frame of ${size} bytes is larger than ${MAX_FRAME_PAYLOAD}`);
      if (data.length < HEADER + size) break;
      frames.push({ type: data[0] as number, payload: data.subarray(HEADER, HEADER + size) });
      data = data.subarray(HEADER + size);
    }
    this.buffered = data.length > 0 ? [data] : [];
    this.length = data.length;
    return frames;
  }
}

export function encodeFrame(type: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out[0] = type;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, HEADER);
  return out;
}

/**
 * Output as frames, each a header and then a slice of `data` (not copied: write them in order).
 * Output larger than a frame holds goes out as several.
 */
export function* outputFrames(type: number, data: Buffer): Generator<Buffer> {
  for (let at = 0; at < data.length; at += MAX_FRAME_PAYLOAD) {
    const payload = data.subarray(at, at + MAX_FRAME_PAYLOAD);
    const header = Buffer.allocUnsafe(HEADER);
    header[0] = type;
    header.writeUInt32BE(payload.length, 1);
    yield header;
    yield payload;
  }
}

/** Who ran the shim, as it says (its effective uid and gid, and getgroups(2)). */
export interface ShimCaller {
  uid: number;
  gid: number;
  groups: number[];
}

export interface StartRequest {
  pty: boolean;
  rows: number;
  cols: number;
  /** The shim's cwd on the master. */
  cwd: string;
  argv: string[];
  /** NAME=value entries as the shim's environ held them. */
  env: string[];
  /** Absent from a version 1 shim, which did not say. */
  caller?: ShimCaller;
}

/** A START of either version: a shim of an older bridge (version 1) still runs, as the agent's user. */
export function decodeStart(payload: Buffer): StartRequest {
  const version = payload[0] ?? 0;
  const fixed = START_FIXED[version];
  if (fixed === undefined) throw new FrameError(`START version ${version}, this bridge speaks ${START_VERSIONS}`);
  if (payload.length < fixed) throw new FrameError('START frame too short');
  const flags = payload[1] as number;
  const rows = payload.readUInt16BE(2);
  const cols = payload.readUInt16BE(4);
  const argc = payload.readUInt32BE(6);
  const envc = payload.readUInt32BE(10);
  let caller: ShimCaller | undefined;
  let at = fixed;
  if (version >= 2) {
    const ngroups = payload.readUInt32BE(22);
    if (ngroups > (payload.length - fixed) / 4) throw new FrameError(`START frame too short for ${ngroups} groups`);
    const groups: number[] = [];
    for (let i = 0; i < ngroups; i++) groups.push(payload.readUInt32BE(fixed + 4 * i));
    caller = { uid: payload.readUInt32BE(14), gid: payload.readUInt32BE(18), groups };
    at += 4 * ngroups;
  }
  const strings = payload.subarray(at).toString('utf8').split('\0');
  // Each string ends with NUL, so the split leaves one empty string after the last.
  if (strings.pop() !== '' || strings.length !== 1 + argc + envc) {
    throw new FrameError(`START frame holds ${strings.length} strings, expected ${1 + argc + envc}`);
  }
  if (argc < 1) throw new FrameError('START frame has no command');
  return {
    pty: (flags & 1) !== 0, rows, cols,
    cwd: strings[0] as string,
    argv: strings.slice(1, 1 + argc),
    env: strings.slice(1 + argc),
    ...(caller === undefined ? {} : { caller }),
  };
}

export function encodeExit(kind: 'exited' | 'signaled', value: number): Buffer {
  const payload = Buffer.allocUnsafe(5);
  payload[0] = kind === 'exited' ? 0 : 1;
  payload.writeInt32BE(value, 1);
  return encodeFrame(FrameType.Exit, payload);
}

export function encodeError(status: number, message: string): Buffer {
  return encodeFrame(FrameType.Error, Buffer.concat([Buffer.from([status & 0xff]), Buffer.from(message, 'utf8')]));
}

export function decodeWinsize(payload: Buffer): { rows: number; cols: number } {
  if (payload.length !== 4) throw new FrameError('WINSIZE frame must hold 4 bytes');
  return { rows: payload.readUInt16BE(0), cols: payload.readUInt16BE(2) };
}
