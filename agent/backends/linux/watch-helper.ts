/**
 * The watcher process (watcher/splitbrain-watch.c) seen from the agent: commands in, records
 * out (watch-frames.ts). One instance is one run of the binary; the feed (agent/watch/change-feed.ts)
 * starts another when it dies.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Logger } from 'pino';
import { nameToBytes } from '../../../protocol/index.js';
import type { Watcher, WatcherListener, WatchMode } from '../change-watch-backend.js';
import { Command, RecordDecoder, encodeCommand, type WatcherRecord } from './watch-frames.js';

export class WatcherGoneError extends Error {
  override name = 'WatcherGoneError';
}

/** How long the watcher may take to say hello before it counts as failed. */
const HELLO_TIMEOUT_MS = 5000;

export class WatchHelper implements Watcher {
  private readonly decoder = new RecordDecoder();
  /** Answers to Add and Reset come in the order the commands went. */
  private readonly answers: { resolve(value: number): void; reject(err: Error): void; reset: boolean }[] = [];
  private readonly syncs = new Map<number, { resolve(): void; reject(err: Error): void }>();
  private nextToken = 1;
  /** Resets sent and not answered: events until the answer are of the old instance. */
  private resetting = 0;
  private gone: string | undefined;
  private hello: ((mode: string, why: string | undefined) => void) | undefined;

  private constructor(private readonly child: ChildProcessWithoutNullStreams, private readonly listener: WatcherListener, private readonly log: Logger) {}

  /**
   * Runs `binary` for the export root `hostRoot` (fanotify marks its filesystem when `mode` is
   * auto and the kernel lets it); resolves once it has said which mode it watches in, and why
   * not fanotify.
   */
  static start(binary: string, hostRoot: string, mode: WatchMode, listener: WatcherListener, log: Logger): Promise<{ helper: WatchHelper; mode: string; why?: string }> {
    const child = spawn(binary, ['--mode', mode, hostRoot], { stdio: ['pipe', 'pipe', 'pipe'] });
    const helper = new WatchHelper(child, listener, log);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => helper.fail(`no hello within ${HELLO_TIMEOUT_MS} ms`), HELLO_TIMEOUT_MS);
      helper.hello = (mode, why) => {
        clearTimeout(timer);
        resolve({ helper, mode, ...(why === undefined ? {} : { why }) });
      };
      helper.onGone = (reason) => {
        clearTimeout(timer);
        reject(new WatcherGoneError(reason));
      };
      helper.wire();
    });
  }

  /** Until hello: how a failure reaches start(); after it, the listener hears. */
  private onGone: ((reason: string) => void) | undefined;

  private wire(): void {
    const { child } = this;
    child.on('error', (err) => this.fail(`cannot run the watcher: ${err.message}`));
    child.on('exit', (code, signal) => this.fail(`the watcher exited (${signal ?? `status ${code}`})`));
    child.stdin.on('error', (err) => this.fail(`the watcher's stdin: ${err.message}`));
    child.stderr.on('data', (d: Buffer) => this.log.warn({ watcher: d.toString().trim() }, 'watcher says'));
    // watcher --stdout--> agent: answers and events, in the order they happened.
    child.stdout.on('data', (chunk: Buffer) => {
      let records: WatcherRecord[];
      try {
        records = this.decoder.push(chunk);
      } catch (err) {
        this.fail((err as Error).message);
        return;
      }
      for (const record of records) this.take(record);
      if (this.gone === undefined) this.listener.turn();
    });
  }

  private take(record: WatcherRecord): void {
    switch (record.type) {
      case 'hello': {
        const hello = this.hello;
        this.hello = undefined;
        this.onGone = undefined;
        hello?.(record.mode, record.why);
        return;
      }
      case 'event':
        if (this.resetting === 0) this.listener.event(record.wd, record.mask, record.name);
        return;
      case 'dir-event':
        if (this.resetting === 0) this.listener.dirEvent(record.mask, record.dir, record.name, record.pid);
        return;
      case 'synced':
        this.syncs.get(record.token)?.resolve();
        this.syncs.delete(record.token);
        return;
      case 'added':
      case 'reset': {
        const answer = this.answers.shift();
        if (answer === undefined || answer.reset !== (record.type === 'reset')) {
          this.fail('the watcher answered a command it was not sent');
          return;
        }
        if (answer.reset) this.resetting--;
        answer.resolve(record.type === 'added' ? record.result : 0);
      }
    }
  }

  private send(command: Command, payload?: Buffer | number): void {
    if (this.gone !== undefined) throw new WatcherGoneError(this.gone);
    this.child.stdin.write(encodeCommand(command, payload));
  }

  /**
   * Watches the directory at `hostPath`: its watch descriptor, 0 when the fanotify mark covers
   * it under that path, or -errno. `inotify`: a watch even in fanotify mode (the slave path
   * reaches it through a symlink, so the mark would report it under another path).
   */
  add(hostPath: string, inotify = false): Promise<number> {
    return new Promise((resolve, reject) => {
      // Escaped bytes as they are (protocol/name-bytes.ts).
      this.send(inotify ? Command.AddInotify : Command.Add, nameToBytes(hostPath));
      this.answers.push({ resolve, reject, reset: false });
    });
  }

  remove(wd: number): void {
    if (this.gone === undefined) this.send(Command.Remove, wd);
  }

  /** Resolves once every event queued before now has been handed to the listener. */
  sync(): Promise<void> {
    return new Promise((resolve, reject) => {
      const token = this.nextToken++ >>> 0;
      this.send(Command.Sync, token);
      this.syncs.set(token, { resolve, reject });
    });
  }

  /** Drops every watch and queued event (a new inotify instance); resolves once done. */
  reset(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.send(Command.Reset);
      this.resetting++;
      this.answers.push({ resolve: () => resolve(), reject, reset: true });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private fail(reason: string): void {
    if (this.gone !== undefined) return;
    this.gone = reason;
    const err = new WatcherGoneError(reason);
    for (const answer of this.answers.splice(0)) answer.reject(err);
    for (const sync of this.syncs.values()) sync.reject(err);
    this.syncs.clear();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    if (this.onGone) this.onGone(reason);
    else this.listener.died(reason);
  }

  /** Ends the watcher; the listener is not told. */
  stop(): void {
    this.gone ??= 'stopped';
    this.child.stdin.end();
    this.child.kill('SIGTERM');
  }
}
