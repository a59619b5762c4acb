/**
 * Protocol version. Bumped when an op changes shape; new ops are gated by the capability list
 * an agent reports in `agent.hello`, so an older peer answers ENOSYS instead of misreading.
 */
export const PROTOCOL_VERSION = 2;

/**
 * The oldest version an agent still answers, in that version's forms (protocol/wire-forms.ts):
 * 2 added nanosecond times and file names as bytes.
 */
export const MIN_PROTOCOL_VERSION = 1;

/** Every subject of ours starts with this token, so one NATS deployment can host other users. */
export const SUBJECT_ROOT = 'splitbrain';
