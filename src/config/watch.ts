/**
 * Seeing the homeowner's config file change while the daemon runs (docs/configuration.md "Reload").
 *
 * Two ways at once, because neither alone is enough on a real board:
 * - `fs.watch` on the file's directory (inotify on Linux) sees an editor's write or a delete at once. It
 *   watches the directory, not the file, so a file replaced by rename (vim, `wallbox config set`) or deleted
 *   and written again is still seen. inotify can be unavailable: the per-user instance limit (128 by default)
 *   is reached, or the file system does not report changes (some network and FUSE mounts).
 * - A stat poll (every `pollMs`) compares the file's identity, size and change times with what was last
 *   loaded, so a change is seen even without inotify, and a change made between the start-up load and the
 *   moment the watch began is not missed (the poll's first look is at start()).
 *
 * Whatever sees a change first, one debounced call to `onChange` follows; the poll takes its new baseline at
 * that moment, so the same change is never reported twice (a doubled "config refused" event would be noise).
 */
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

/**
 * What identifies one version of the file: inode, size, modification and status-change times in ns, or that
 * it is absent (with the error code). Two reads with the same fingerprint saw the same file content unless
 * something rewrote it within one timestamp tick and kept its size, which editors do not do.
 */
export async function configFingerprint(path: string): Promise<string> {
  try {
    const s = await stat(path, { bigint: true });
    return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (e) {
    return `absent:${(e as NodeJS.ErrnoException)?.code ?? 'error'}`;
  }
}

export interface ConfigWatchOptions {
  /** The config file (absolute). */
  path: string;
  /** The fingerprint taken just before the config in force was read (configFingerprint, before loading). */
  baseline: string;
  /** Called once per seen change, after `debounceMs` of quiet. */
  onChange: () => void;
  /** How often the file is stat'ed; 2000 ms by default (one stat call, far below any load figure). */
  pollMs?: number;
  /** Quiet time after the last event before onChange: an editor's save is several events. */
  debounceMs?: number;
  /** Warnings (the watch is not available and why); the daemon's log. */
  warn?: (message: string) => void;
  /** fs.watch, replaceable so a test can take inotify away. */
  watchFn?: (dir: string, listener: (event: string, name: string | Buffer | null) => void) => FSWatcher;
}

export class ConfigFileWatcher {
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  /** Set while a report waits out its quiet time. */
  private debounce: NodeJS.Timeout | undefined;
  private last: string;
  private stopped = false;
  private warned = false;
  private polling = false;
  private readonly pollMs: number;
  private readonly debounceMs: number;

  constructor(private readonly opts: ConfigWatchOptions) {
    this.last = opts.baseline;
    this.pollMs = opts.pollMs ?? 2000;
    this.debounceMs = opts.debounceMs ?? 200;
  }

  /** Begins watching and polling; looks once at once, so a change since the baseline is reported. */
  start(): void {
    this.tryWatch();
    this.pollTimer = setInterval(() => void this.poll(), this.pollMs);
    this.pollTimer.unref();
    void this.poll();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.debounce);
    this.closeWatch();
  }

  /**
   * The file was just read by another path (SIGHUP, `wallbox config set`, the page): `fingerprint` (taken
   * before that read) is the new baseline, so the watch does not reload the same change a second time.
   */
  accept(fingerprint: string): void {
    this.last = fingerprint;
  }

  /** True while inotify delivers events; false when only the poll sees changes. */
  watching(): boolean {
    return this.watcher !== undefined;
  }

  private tryWatch(): void {
    if (this.watcher || this.stopped) return;
    const name = basename(this.opts.path);
    try {
      const w = (this.opts.watchFn ?? fsWatch)(dirname(this.opts.path), (_event, changed) => {
        // a null name (some platforms) may be ours: look
        if (changed !== null && changed.toString() !== name) return;
        this.schedule();
      });
      w.on('error', (e) => {
        this.noteWatchFailure(e);
        this.closeWatch();
      });
      this.watcher = w;
    } catch (e) {
      this.noteWatchFailure(e);
    }
  }

  private closeWatch(): void {
    try {
      this.watcher?.close();
    } catch {
      // already closed
    }
    this.watcher = undefined;
  }

  private noteWatchFailure(e: unknown): void {
    if (this.warned) return;
    this.warned = true;
    const cause = (e as Error)?.message ?? String(e);
    this.opts.warn?.(`config file watch not available (${cause}): changes to ${this.opts.path} are seen by looking every ${this.pollMs / 1000} s`);
  }

  private async poll(): Promise<void> {
    if (this.stopped || this.polling) return;
    this.polling = true;
    try {
      // a watch lost earlier (directory gone and back, instances freed) is taken up again
      if (!this.watcher) this.tryWatch();
      // a report already waiting is left to its quiet time: re-arming it on every look would put it off for
      // as long as the file differs (forever, with a look more often than the quiet time)
      if (this.debounce === undefined && (await configFingerprint(this.opts.path)) !== this.last) this.schedule();
    } finally {
      this.polling = false;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.fire(), this.debounceMs);
  }

  private async fire(): Promise<void> {
    this.debounce = undefined;
    if (this.stopped) return;
    // the baseline is taken before the reload reads the file: a write during the read is seen next time
    const now = await configFingerprint(this.opts.path);
    if (this.stopped) return;
    // inotify reports touches that change nothing (attribute-only events are still worth a look: ctime moves)
    if (now === this.last) return;
    this.last = now;
    this.opts.onChange();
  }
}
