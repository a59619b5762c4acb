// The part of fuse-native's untyped API that fuse-adapter.ts uses.
declare module 'fuse-native' {
  type Callback = (...args: unknown[]) => void;
  class Fuse {
    constructor(mnt: string, ops: Record<string, Callback>, opts?: Record<string, unknown>);
    readonly mnt: string;
    readonly ops: Record<string, Callback>;
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    protected _fuseOptions(): string;
  }
  export default Fuse;
}
