/**
 * Handle numbers: 32-bit, never 0, and not reused soon. The agent's for open files, devices and
 * processes (a master's stale number meets EBADF or ESRCH, not a stranger's handle), and the
 * mount's for the kernel (which outlive the agent's across a restart).
 */
export class HandleIds {
  private next: number;

  /** Numbers from `first` to `last` (both inclusive, `first` > 0), then from `first` again. */
  constructor(private readonly first = 1, private readonly last = 0xffff_ffff) {
    this.next = first;
  }

  /** The next number `inUse` does not claim. */
  take(inUse: (id: number) => boolean): number {
    while (inUse(this.next)) this.next = this.after(this.next);
    const id = this.next;
    this.next = this.after(id);
    return id;
  }

  private after(id: number): number {
    return id >= this.last ? this.first : id + 1;
  }
}

/**
 * A file handle a master names itself (`fs.create`'s `handle`), so that it can send requests on
 * the file before the create's reply comes back: bit 31 set, which the agent's own numbers never
 * have. Each master's names are its own (the agent keys them by the request's origin).
 */
export const MASTER_HANDLE_FIRST = 0x8000_0000;
export const AGENT_HANDLE_LAST = MASTER_HANDLE_FIRST - 1;

export function isMasterHandle(fh: number): boolean {
  return fh >= MASTER_HANDLE_FIRST;
}

/** The hello capability of an agent that takes handles named by the master. */
export const MASTER_HANDLES_CAPABILITY = 'fs.master-handles';
/** The hello capability of an agent that also takes them in fs.open (`handle`). */
export const MASTER_HANDLE_OPENS_CAPABILITY = 'fs.open.master-handles';
/**
 * The hello capability of an agent that takes fs.rename's `noReplace`: an older one would drop
 * the field and replace the target.
 */
export const RENAME_NOREPLACE_CAPABILITY = 'fs.rename.noreplace';
/** The agent takes fs.rename's `exchange` (renameat2's RENAME_EXCHANGE): an older one would drop the field and replace `to`. */
export const RENAME_EXCHANGE_CAPABILITY = 'fs.rename.exchange';
/**
 * The hello capability of an agent that names paths longer than one system call takes (up to
 * LONG_PATH_MAX): an older one refuses a request naming more than PATH_MAX characters.
 */
export const LONG_PATHS_CAPABILITY = 'fs.path.long';
