/**
 * Protocol version. Bumped when an op changes shape; new ops are gated by the capability list
 * an agent reports in `agent.hello`, so an older peer answers ENOSYS instead of misreading.
 */
export const PROTOCOL_VERSION = 1;

/** Every subject of ours starts with this token, so one NATS deployment can host other users. */
export const SUBJECT_ROOT = 'splitbrain';
