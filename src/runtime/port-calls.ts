/**
 * Port calls the loop can never be held up by (issue 14, point 7).
 *
 * Every call the runtime makes to a port goes through a {@link BoundedCaller}: it has a time bound on the
 * injected clock, a call that does not answer within it is a fault of that port with its cause (cleared
 * when the port answers in time again), and nothing it throws or rejects escapes. Commands go through a
 * {@link CommandChannel}: at most one call in flight per command (plus one that makes the device safer,
 * see `isSafe`), newer values replace queued older ones, and a late answer never counts for a value that a
 * newer command has replaced. A device that hangs therefore costs a bounded number of outstanding calls,
 * not a growing queue, and never the loop's time.
 */
import type { Clock } from '../../hal/ports.ts';
import type { RuntimeLog } from './types.ts';

export async function safely(fn: () => Promise<void> | void): Promise<void> {
  try {
    await fn();
  } catch {
    // ports report failures in their state; a throw here must not stop the loop
  }
}

export function safelySync(fn: () => unknown, log: RuntimeLog): void {
  try {
    fn();
  } catch (e) {
    log('error', `record/report failed: ${(e as Error)?.message ?? String(e)}`);
  }
}

/** How a bounded call ended. */
export type CallOutcome = 'answered' | 'failed' | 'timeout';

function message(e: unknown): string {
  return (e as Error)?.message ?? String(e);
}

/**
 * Runs port calls with a time bound and keeps, per port, the fault the runtime itself saw: a call that
 * did not answer within the bound (reported until every such call has ended and a later call answered in
 * time: a device that answers reads but hangs on writes stays faulted), or a call that threw.
 */
export class BoundedCaller {
  private readonly causes = new Map<string, string>();
  private readonly overdue = new Map<string, number>();
  /** Bumped whenever a call starts or ends: lets `Runtime.settled()` see that work is still moving. */
  progress = 0;

  /**
   * @param timeoutMs the bound, read at each call (a config reload changes it)
   * @param onFaultChange called when a port's fault appears, changes or clears (the loop decides at once)
   */
  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: () => number,
    private readonly onFaultChange: (kind: string) => void,
  ) {}

  /** The runtime's own fault for this port, if any (e.g. `setPowerW did not answer within 1500 ms`). */
  fault(kind: string): string | undefined {
    return this.causes.get(kind);
  }

  /** Every port fault the runtime sees, as `kind: cause`. */
  allFaults(): string[] {
    return [...this.causes].map(([k, m]) => `${k}: ${m}`);
  }

  private setCause(kind: string, cause: string | undefined): void {
    if (cause === undefined) {
      if (!this.causes.delete(kind)) return;
    } else {
      if (this.causes.get(kind) === cause) return;
      this.causes.set(kind, cause);
    }
    this.onFaultChange(kind);
  }

  /**
   * Call `fn` with the bound. Resolves with the outcome when the call answers or the bound passes,
   * whichever is first; never rejects. `settle` (optional) is told when the underlying call really ends,
   * even after the bound. With `track: false` the outcome does not touch the port's fault (opening a port
   * has its own reporting).
   */
  call(
    kind: string, method: string, fn: () => Promise<void> | void,
    o: { settle?: (outcome: CallOutcome, late: boolean) => void; boundMs?: number; track?: boolean } = {},
  ): Promise<CallOutcome> {
    const boundMs = o.boundMs ?? this.timeoutMs();
    const track = o.track !== false;
    this.progress++;
    return new Promise<CallOutcome>((resolve) => {
      let timedOut = false;
      let ended = false;
      const handle = this.clock.setTimer(() => {
        if (ended) return;
        timedOut = true;
        this.progress++;
        if (track) {
          this.overdue.set(kind, (this.overdue.get(kind) ?? 0) + 1);
          this.setCause(kind, `${method} did not answer within ${boundMs} ms`);
        }
        resolve('timeout');
      }, boundMs);
      const finish = (outcome: 'answered' | 'failed', err?: unknown) => {
        if (ended) return;
        ended = true;
        this.progress++;
        if (timedOut) {
          if (track) this.overdue.set(kind, Math.max(0, (this.overdue.get(kind) ?? 1) - 1));
        } else {
          this.clock.clearTimer(handle);
          if (track) {
            if (outcome === 'failed') this.setCause(kind, `${method} failed: ${message(err)}`);
            // a port that answers in time is healthy again as far as the runtime can tell
            else if (!this.overdue.get(kind)) this.setCause(kind, undefined);
          }
          resolve(outcome);
        }
        o.settle?.(outcome, timedOut);
      };
      let p: Promise<void> | void;
      try {
        p = fn();
      } catch (e) {
        finish('failed', e);
        return;
      }
      Promise.resolve(p).then(
        () => finish('answered'),
        (e) => finish('failed', e),
      );
    });
  }
}

/** `p`, or `undefined` once `ms` of the clock have passed (never rejects): for steps that must not hang. */
export function within<T>(clock: Clock, p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    let done = false;
    const handle = clock.setTimer(() => {
      if (done) return;
      done = true;
      resolve(undefined);
    }, ms);
    p.then(
      (v) => {
        if (done) return;
        done = true;
        clock.clearTimer(handle);
        resolve(v);
      },
      () => {
        if (done) return;
        done = true;
        clock.clearTimer(handle);
        resolve(undefined);
      },
    );
  });
}

interface Waiter {
  resolve: (ok: boolean) => void;
}

/**
 * One command of one port (the inverter's setpoint, the contactor, one load tier ...): the latest
 * value wins. `send(v)` issues at once when nothing is in flight, or when `isSafe(v)` and fewer than
 * `maxOutstanding` calls are unanswered (opening the contactor, a zero setpoint: they never wait behind a
 * device that hangs on an older command); otherwise it waits, replacing any older queued value.
 */
export class CommandChannel<T> {
  /** The latest value asked for. */
  requested?: T;
  /** The value of the newest call that answered (a late answer of an older call never replaces it). */
  acknowledged?: T;
  /** Whether the newest finished call failed or timed out (the value must be sent again). */
  lastFailed = false;
  private outstanding = 0;
  private issuedSeq = 0;
  private ackSeq = 0;
  private queued?: { value: T; waiters: Waiter[] };

  constructor(
    private readonly caller: BoundedCaller,
    readonly kind: string,
    readonly method: string,
    private readonly invoke: (v: T) => Promise<void> | void,
    private readonly isSafe: (v: T) => boolean = () => false,
    private readonly maxOutstanding = 2,
  ) {}

  /** No call of this command is unanswered and none is queued. */
  get idle(): boolean {
    return this.outstanding === 0 && this.queued === undefined;
  }

  /** Calls issued and not answered yet (including ones past their bound). */
  get unanswered(): number {
    return this.outstanding;
  }

  /** Forget what was asked (the port was reopened: its state is unknown). */
  reset(): void {
    this.requested = undefined;
    this.acknowledged = undefined;
    this.lastFailed = false;
  }

  /** Ask for `value`; resolves true when a call carrying it answered in time, false otherwise (never rejects). */
  send(value: T): Promise<boolean> {
    this.requested = value;
    return new Promise<boolean>((resolve) => {
      const waiter = { resolve };
      if (this.outstanding === 0 || (this.isSafe(value) && this.outstanding < this.maxOutstanding)) {
        // a queued older value is replaced by this one
        if (this.queued) {
          for (const w of this.queued.waiters) w.resolve(false);
          this.queued = undefined;
        }
        this.issue(value, [waiter]);
        return;
      }
      if (this.queued) for (const w of this.queued.waiters) w.resolve(false);
      this.queued = { value, waiters: [waiter] };
    });
  }

  private issue(value: T, waiters: Waiter[]): void {
    const seq = ++this.issuedSeq;
    this.outstanding++;
    void this.caller
      .call(this.kind, this.method, () => this.invoke(value), { settle: (outcome) => {
        // the underlying call really ended (maybe after its bound): free the slot, send what waited
        this.outstanding--;
        if (outcome === 'answered' && seq > this.ackSeq) {
          this.ackSeq = seq;
          this.acknowledged = value;
        }
        // an older command that answered after a newer one was issued may have reached the device last:
        // the newest value is sent again so it is the one in force
        if (outcome === 'answered' && seq < this.issuedSeq && this.requested !== undefined && !Object.is(this.requested, value) && !this.queued)
          this.queued = { value: this.requested, waiters: [] };
        const next = this.queued;
        if (next && this.outstanding === 0) {
          this.queued = undefined;
          this.issue(next.value, next.waiters);
        }
      } })
      .then((outcome) => {
        if (seq === this.issuedSeq) this.lastFailed = outcome !== 'answered';
        for (const w of waiters) w.resolve(outcome === 'answered');
      });
  }
}
