/**
 * A channel that plays a candump capture back: once opened, each logged frame is delivered at its logged
 * time on the given clock (the virtual clock in tests), with that time as its `atMs`. What the driver sends
 * goes nowhere (it is counted). Frames the driver itself would send (BMS ids) can be left out, so a capture of
 * a live run (both sides) replays only the inverter's side.
 */
import type { Clock } from '../../ports.ts';
import type { LoggedFrame } from './candump.ts';
import { frameProblem, ListenedCanChannel, type CanChannel, type CanChannelError, type CanFrame } from './channel.ts';

export interface ReplayOptions {
  clock: Clock;
  /** Deliver only the frames this returns true for (default: all). */
  filter?: (f: LoggedFrame) => boolean;
  /** Where the capture's first frame lands on the clock, ms; default: each frame at its logged epoch time. */
  startAtMs?: number;
}

export class ReplayChannel extends ListenedCanChannel implements CanChannel {
  readonly name: string;
  private readonly timers: unknown[] = [];
  /** Frames the driver sent into the replay. */
  sentCount = 0;

  constructor(
    private readonly log: readonly LoggedFrame[],
    private readonly o: ReplayOptions,
  ) {
    super();
    this.name = log[0]?.iface ?? 'replay';
  }

  async open(): Promise<void> {
    const first = this.log[0];
    if (!first) return;
    const now = this.o.clock.nowMs();
    for (const lf of this.log) {
      if (this.o.filter && !this.o.filter(lf)) continue;
      const atMs = this.o.startAtMs === undefined ? lf.timeUs / 1000 : this.o.startAtMs + (lf.timeUs - first.timeUs) / 1000;
      if (atMs < now) continue;
      const frame: CanFrame = { ...lf.frame, data: Uint8Array.from(lf.frame.data), atMs };
      this.timers.push(this.o.clock.setTimer(() => this.deliver(frame), atMs - now));
    }
  }

  send(frame: CanFrame): boolean {
    if (frameProblem(frame)) return false;
    this.sentCount++;
    return true;
  }

  async close(): Promise<void> {
    for (const t of this.timers) this.o.clock.clearTimer(t);
    this.timers.length = 0;
  }

  private deliver(f: CanFrame): void {
    this.emitFrame(f);
  }
}
