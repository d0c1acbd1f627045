/**
 * Coalescing command queue for inverter drivers: at most one pending command per kind, the latest value
 * wins, and the pending commands are written in the order they were last issued.
 *
 * Why this shape: a device slower than the control loop must never build a backlog (a queue that grows
 * by one entry per tick delays each new setpoint by the whole backlog), and a superseded setpoint has no
 * value once a newer one exists. Order still matters between kinds for invariant 5 (docs/architecture.md):
 * `setGridForming(false)` issued before `setPowerW(x)` must reach the device first. Ordering the pending
 * kinds by when each was last issued keeps that for every value that is still going to be written: a
 * command issued after another is never written before it. A superseded value is not written at all.
 *
 * No I/O and no clock: the driver takes the next command and settles it once written or failed.
 */

interface Entry<M, K extends keyof M> {
  kind: K;
  value: M[K];
  settle: () => void;
  done: Promise<void>;
}

/** A command taken from the queue; call `settle()` once it has been written (or has failed). */
export interface TakenCommand<M, K extends keyof M = keyof M> {
  kind: K;
  value: M[K];
  settle(): void;
}

export class CommandQueue<M extends Record<string, unknown>> {
  private entries: Entry<M, keyof M>[] = [];

  /** Pending commands (at most one per kind). */
  get length(): number {
    return this.entries.length;
  }

  /** The pending kinds, next to be written first. */
  kinds(): (keyof M)[] {
    return this.entries.map((e) => e.kind);
  }

  /** The pending value of a kind, if one is queued. */
  pending<K extends keyof M>(kind: K): M[K] | undefined {
    return this.entries.find((e) => e.kind === kind)?.value as M[K] | undefined;
  }

  /**
   * Queue `value` as the latest command of `kind`. A pending command of the same kind is replaced and moves
   * behind every command issued before this one. Resolves (never rejects) once this value, or a newer one
   * of the same kind, has been written or has failed.
   */
  push<K extends keyof M>(kind: K, value: M[K]): Promise<void> {
    const i = this.entries.findIndex((e) => e.kind === kind);
    if (i >= 0) {
      const [e] = this.entries.splice(i, 1);
      e.value = value;
      this.entries.push(e);
      return e.done;
    }
    let settle!: () => void;
    const done = new Promise<void>((resolve) => (settle = resolve));
    this.entries.push({ kind, value, settle, done } as Entry<M, keyof M>);
    return done;
  }

  /** Remove and return the next command to write. */
  take(): TakenCommand<M> | undefined {
    const e = this.entries.shift();
    return e ? { kind: e.kind, value: e.value, settle: e.settle } : undefined;
  }

  /** Settle every pending command without writing it (the port is closing). */
  clear(): void {
    const all = this.entries;
    this.entries = [];
    for (const e of all) e.settle();
  }
}
