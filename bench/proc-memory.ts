/**
 * A process's memory as the kernel counts it (/proc/PID/status and smaps_rollup), in MiB.
 *
 *  - resident (VmRSS): every page mapped in, the kernel's usual figure;
 *  - private (RssAnon): the process's own heap, stacks and buffers, which no other process shares;
 *  - file-backed (RssFile): pages of files it maps, most of them Node's own binary, shared by every
 *    Node process on the host;
 *  - proportional (Pss): resident, each page shared by N processes counted 1/N: what one more
 *    such process costs a host nearer than its resident size;
 *  - peak (VmHWM): the most it was ever resident.
 */
import { readFile } from 'node:fs/promises';

export interface ProcMemory {
  resident: number;
  private: number;
  fileBacked: number;
  proportional: number;
  peak: number;
}

const kib = (text: string, field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) / 1024;

export async function procMemory(pid: number): Promise<ProcMemory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  return {
    resident: kib(status, 'VmRSS'), private: kib(status, 'RssAnon'), fileBacked: kib(status, 'RssFile'),
    proportional: kib(rollup, 'Pss'), peak: kib(status, 'VmHWM'),
  };
}
