import type { Clock } from '../ports.ts';

interface Timer {
  id: number;
  atMs: number;
  fn: () => void;
}

/**
 * A clock that moves only when told to (its wall reading too: `stepWall()`). `advance()` fires due timers in time order (ties in the order
 * they were set), moving `nowMs` to each timer's time before calling it, so a simulated day runs in seconds
 * and every run is the same.
 */
export class VirtualClock implements Clock {
  private now: number;
  /** Wall clock minus monotonic clock: changed only by `stepWall()`. */
  private wallOffsetMs = 0;
  private timers = new Map<number, Timer>();
  private nextId = 1;

  constructor(startMs: number) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  wallMs(): number {
    return this.now + this.wallOffsetMs;
  }

  /**
   * Set the wall clock `deltaMs` forward (or back, when negative) without moving the monotonic clock or
   * firing timers: what NTP stepping the board's clock looks like to the runtime (scenario event `clockStep`).
   */
  stepWall(deltaMs: number): void {
    this.wallOffsetMs += deltaMs;
  }

  setTimer(fn: () => void, delayMs: number): unknown {
    const t = { id: this.nextId++, atMs: this.now + Math.max(0, delayMs), fn };
    this.timers.set(t.id, t);
    return t.id;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(resolve, delayMs));
  }

  /** When the earliest waiting timer falls due, or undefined when none waits. */
  nextDueMs(): number | undefined {
    let next: number | undefined;
    for (const t of this.timers.values()) if (next === undefined || t.atMs < next) next = t.atMs;
    return next;
  }

  /** Number of timers still waiting. */
  pendingTimers(): number {
    return this.timers.size;
  }

  /** Move time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    this.advanceTo(this.now + ms);
  }

  advanceTo(targetMs: number): void {
    // bounded: each pass removes one timer; a timer that re-arms itself at +0 is fired at most 100000 times
    for (let guard = 0; guard < 100000; guard++) {
      let next: Timer | undefined;
      for (const t of this.timers.values()) if (t.atMs <= targetMs && (!next || t.atMs < next.atMs || (t.atMs === next.atMs && t.id < next.id))) next = t;
      if (!next) break;
      this.timers.delete(next.id);
      this.now = Math.max(this.now, next.atMs);
      next.fn();
    }
    this.now = Math.max(this.now, targetMs);
  }
}
