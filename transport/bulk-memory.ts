/**
 * glibc's malloc tuned for a process that moves bulk data over the bus, once it first does.
 *
 * Every large message is a fresh buffer: nats.js gathers an incoming payload into a new one
 * (transport/patches/), the agent reads a file's chunk into a new one. By default glibc serves
 * such a block with mmap(2) and gives it back with munmap(2), or trims its heap's free top soon
 * after: each buffer then costs a page fault per 4 KiB page on first touch, which in a virtual
 * machine is most of what moving a MiB costs. Measured on the development machine
 * (Node 20, a 1 MiB buffer filled by 64 KiB copies): 0.73-1.08 ms per MiB fresh each time, 0.14
 * ms with the thresholds below, 0.02 ms reusing one buffer; a mount's sequential write went from
 * 103-134 to 147-184 MB/s and the agent's CPU for it from 1.6-2.4 to 0.9-1.3 s per 256 MiB.
 *
 * Blocks up to MMAP_THRESHOLD come from the heap, and up to TRIM_THRESHOLD of free heap is kept
 * for the next message instead of being given back: what a busy process may hold resident beyond
 * its live data. An idle agent never moves bulk data, so it never loads koffi for this (its
 * memory at rest is a goal: docs/performance.md). Where koffi or glibc is missing, nothing is
 * tuned and everything works as before.
 */
import { createRequire } from 'node:module';
import type { Logger } from 'pino';

/** A message at least this large is bulk data. */
export const BULK_BYTES = 256 * 1024;
/** mallopt(3) parameters (glibc's malloc.h). */
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
const MMAP_THRESHOLD = 4 * 1024 * 1024;
const TRIM_THRESHOLD = 64 * 1024 * 1024;

let tuned = false;

/** Tunes malloc once, the first time this process moves a message of BULK_BYTES or more. */
export function sawMessage(bytes: number, log: Logger): void {
  if (tuned || bytes < BULK_BYTES) return;
  tuned = true;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const mallopt = koffi.load('libc.so.6').func('int mallopt(int param, int value)') as (param: number, value: number) => number;
    const ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) === 1 && mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) === 1;
    log.debug({ ok, mmapThreshold: MMAP_THRESHOLD, trimThreshold: TRIM_THRESHOLD }, 'malloc tuned for bulk data');
  } catch (err) {
    log.debug({ err }, 'malloc not tuned for bulk data (no koffi or glibc here)');
  }
}
