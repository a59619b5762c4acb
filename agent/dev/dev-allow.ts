/**
 * Which devices masters may open: globs of paths relative to the dev root (path-globs.ts). The
 * default lets tests talk to terminals and serial ports and use the harmless devices, and
 * nothing else: a slave's disks need the operator's word.
 */
export const DEFAULT_DEV_ALLOW = ['tty*', 'pts/*', 'null', 'zero', 'urandom', 'random'];
