/** Node's Stats into the protocol's attributes, and the protocol's times into Node's. */
import type { Stats } from 'node:fs';
import { attrToWire, type TimeSpec, type WireAttr } from '../../protocol/index.js';

export function statToWire(st: Stats): WireAttr {
  return attrToWire({
    mode: st.mode,
    nlink: st.nlink,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    blocks: st.blocks,
    atimeMs: st.atimeMs,
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
    ino: st.ino,
    rdev: st.rdev,
    blksize: st.blksize,
  });
}

/** utimensat's time argument in the seconds Node's utimes takes; 'omit' keeps `currentMs`. */
export function utimeSeconds(spec: TimeSpec, currentMs: number): number {
  if (spec === 'now') return Date.now() / 1000;
  if (spec === 'omit') return currentMs / 1000;
  return spec / 1000;
}
