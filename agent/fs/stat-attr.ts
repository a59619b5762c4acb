/** Node's Stats into the protocol's attributes. */
import type { Stats } from 'node:fs';
import { attrToWire, type WireAttr } from '../../protocol/index.js';

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
