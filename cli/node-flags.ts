/**
 * Node flags for the long-running processes that move bulk data: the processes that serve a FUSE
 * mount (the background `splitbrain mount`, the child `daemonize` starts; the device mount the
 * sidecar starts; the sidecar image's entry point, whose process runs the bridge too) and the
 * agent where we start it (the agent image's entry point, compose/splitbrain-agent.service, the
 * demo), and the bench's mounts, agents and bridges.
 *
 * Why: a mount's own heap is small (about 14 MB), but every 1 MiB bus message it reads is a new
 * buffer outside that heap. V8 sets its collection limits from the heap's size, so with its default
 * initial old space a cold read of 256 MiB ran 21-27 full mark-compacts ("external memory
 * pressure") and an untar of npm 19-22. With 64 MB: 5 and 6; the read took 970 -> 660 ms of the
 * mount's CPU and the untar 4.24 -> 3.89 s; resident memory when idle is the same (72-74 MB).
 * The agent receives a master's writes the same way: 512 MiB written through a mount ran 44-55
 * mark-compacts in the agent, none with 64 MB, and took 2.0 s of the agent's CPU instead of 1.1
 * (`dd` 3.2 -> 2.7 s); an idle agent is about 0.8 MB larger with it.
 * V8 reads the flag only at start: it cannot be set at run time (v8.setFlagsFromString: measured,
 * no effect) or given in NODE_OPTIONS, which refuses it.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];

/**
 * The agent's: the server flags, and one helper thread for V8 (compiling, collecting) instead of
 * Node's four. Why: an agent mostly idles, and a lab runs many on one host (issue 22's goal: an
 * idle agent under 60 MB resident). Each of V8's threads keeps its stack and its own glibc malloc
 * arena: with one, an idle agent settles 0.6-0.8 MiB smaller (two of each, side by side, 20 s
 * after start: 58.6-59.0 MiB against 59.3-59.5). Measured no slower on two cores: 256 MiB written
 * through a mount, three runs each, 184-233 MB/s and 1.30-1.62 s of the agent's CPU without,
 * 225-251 MB/s and 1.23-1.35 s with; a first untar of npm 7.0-9.3 s either way.
 */
export const AGENT_NODE_FLAGS: readonly string[] = [...SERVER_NODE_FLAGS, '--v8-pool-size=1'];

/**
 * A mount's (and the sidecar's, whose process serves the bridge too): the server flags, and V8
 * optimising a hot function after a quarter of the bytecode it would otherwise run first. Why: a
 * mount serves each kernel request through the same few hundred functions, and a workload's first
 * seconds ran them unoptimised: the first untar of npm on a new mount took 7.30 s (four runs,
 * 6.75-7.85) and 425 ticks of the mount's CPU, with this flag 6.54 s (6.13-7.14) and 389; a second
 * untar on the same mount 5.33 s against 5.23 (docs/performance.md, Notes). Not the agent's: its
 * startup then optimises more of Node's own module loader, and an idle agent settled 1.7-2.4 MB
 * larger (issue 22 keeps it under 60 MB).
 */
export const MOUNT_NODE_FLAGS: readonly string[] = [...SERVER_NODE_FLAGS, '--interrupt-budget=16896'];

/** `execArgv` with the mount flags it does not set itself (a flag given explicitly wins). */
export function withMountFlags(execArgv: readonly string[]): string[] {
  const named = (flag: string): string => flag.split('=')[0] ?? flag;
  const given = new Set(execArgv.map(named));
  return [...MOUNT_NODE_FLAGS.filter((flag) => !given.has(named(flag))), ...execArgv];
}
