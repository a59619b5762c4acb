/** The wire protocol, shared by agent and master. Pure: no I/O, imports nothing else of ours. */
export * from './attr.js';
export * from './caller.js';
export * from './changes.js';
export * from './codec.js';
export * from './link.js';
export * from './errno.js';
export * from './errors.js';
export * from './file-times.js';
export * from './handle-ids.js';
export * from './name-bytes.js';
export * from './ops.js';
export * from './subjects.js';
export * from './symlink-target.js';
export * from './termios.js';
export * from './version.js';
export * from './wire-forms.js';
