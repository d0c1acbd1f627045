/**
 * GPIO ports (grid sense, contactor + feedback, load-shed relays, e-stop) built on digital lines.
 * The same code drives the board's lines (onoff, see onoff.ts) and the simulated ones (hal/sim/lines.ts):
 * only the DigitalLine underneath differs.
 */
import type {
  Clock, EStopPort, EStopState, GridSensePort, GridSenseState, PortFault, RelayPort, RelayState, Unsubscribe,
} from '../ports.ts';

/** Logical level 0/1 of one line, as the electrical level on the pin (polarity is applied above it). */
export type Level = 0 | 1;

/**
 * One digital line. `watch` fires on every electrical edge (both edges) with the new level.
 * `write` is only valid on outputs. Implementations: OnoffLine (board) and SimLine (stand-in).
 */
export interface DigitalLine {
  readonly name: string;
  read(): Level;
  write(level: Level): Promise<void>;
  watch(listener: (level: Level) => void): Unsubscribe;
  close(): void;
}

function emitAll(listeners: Set<() => void>): void {
  for (const l of [...listeners]) {
    try {
      l();
    } catch {
      // a listener's failure must not stop the others or the driver
    }
  }
}

function lineFault(line: DigitalLine, e: unknown, clock: Clock, code = 'io_error'): PortFault {
  return { code, message: `GPIO ${line.name}: ${(e as Error)?.message ?? String(e)}`, sinceMs: clock.nowMs() };
}

/**
 * Grid-sense input, debounced: a level must hold for `debounceMs` before it counts.
 * `activeLevel` is the electrical level that means "grid present".
 */
export class LineGridSense implements GridSensePort {
  readonly kind = 'grid-sense' as const;
  private s: GridSenseState = {};
  private listeners = new Set<() => void>();
  private pending: unknown;
  private unwatch?: Unsubscribe;

  constructor(private line: DigitalLine, private clock: Clock, private opts: { activeLevel: Level; debounceMs: number }) {}

  async open(): Promise<void> {
    this.s = { present: this.line.read() === this.opts.activeLevel, changedAtMs: this.clock.nowMs() };
    this.unwatch = this.line.watch((level) => this.edge(level));
  }

  private edge(level: Level): void {
    if (this.pending !== undefined) this.clock.clearTimer(this.pending);
    this.pending = undefined;
    const settle = () => {
      this.pending = undefined;
      let present: boolean;
      try {
        present = this.line.read() === this.opts.activeLevel;
      } catch (e) {
        this.s = { ...this.s, fault: lineFault(this.line, e, this.clock) };
        emitAll(this.listeners);
        return;
      }
      if (present !== this.s.present) {
        this.s = { present, changedAtMs: this.clock.nowMs() };
        emitAll(this.listeners);
      } else if (this.s.fault) {
        // a sane read ends a read fault even when the level did not change meanwhile
        this.s = { present, changedAtMs: this.s.changedAtMs };
        emitAll(this.listeners);
      }
    };
    if (this.opts.debounceMs <= 0) {
      void level;
      settle();
    } else this.pending = this.clock.setTimer(settle, this.opts.debounceMs);
  }

  state(): GridSenseState {
    return this.s;
  }

  async close(): Promise<void> {
    if (this.pending !== undefined) this.clock.clearTimer(this.pending);
    this.unwatch?.();
  }

  onChange(listener: () => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export interface RelayLines {
  contactor: DigitalLine;
  contactorFeedback?: DigitalLine;
  loadTiers: DigitalLine[];
}

/**
 * Grid contactor with its auxiliary feedback contact, and load-shed relays.
 * `closedLevel` is the output level that closes the contactor; `feedbackClosedLevel` the input level
 * that means the contact is closed; `tierOnLevel` the output level that powers a load tier.
 */
export class LineRelays implements RelayPort {
  readonly kind = 'relays' as const;
  private s: RelayState;
  private listeners = new Set<() => void>();
  private unwatch?: Unsubscribe;
  /** The line whose write failed last: only its own good write clears the fault. */
  private faultLine?: DigitalLine;

  constructor(
    private lines: RelayLines,
    private clock: Clock,
    private opts: { closedLevel: Level; feedbackClosedLevel: Level; tierOnLevel: Level },
  ) {
    this.s = { contactorCommandClosed: true, loadTiersOn: lines.loadTiers.map(() => true) };
  }

  async open(): Promise<void> {
    const { contactor, contactorFeedback, loadTiers } = this.lines;
    this.s = {
      contactorCommandClosed: contactor.read() === this.opts.closedLevel,
      contactorFeedbackClosed: contactorFeedback ? contactorFeedback.read() === this.opts.feedbackClosedLevel : undefined,
      feedbackChangedAtMs: this.clock.nowMs(),
      loadTiersOn: loadTiers.map((l) => l.read() === this.opts.tierOnLevel),
    };
    if (contactorFeedback)
      this.unwatch = contactorFeedback.watch((level) => {
        const closed = level === this.opts.feedbackClosedLevel;
        if (closed !== this.s.contactorFeedbackClosed) {
          this.s = { ...this.s, contactorFeedbackClosed: closed, feedbackChangedAtMs: this.clock.nowMs() };
          emitAll(this.listeners);
        }
      });
  }

  state(): RelayState {
    return this.s;
  }

  async setContactor(closed: boolean): Promise<void> {
    const line = this.lines.contactor;
    try {
      await line.write(closed ? this.opts.closedLevel : ((1 - this.opts.closedLevel) as Level));
      this.s = { ...this.s, contactorCommandClosed: closed, fault: this.faultAfterGoodWrite(line) };
    } catch (e) {
      this.faultLine = line;
      this.s = { ...this.s, fault: lineFault(line, e, this.clock) };
      emitAll(this.listeners);
    }
  }

  async setLoadTier(index: number, on: boolean): Promise<void> {
    const line = this.lines.loadTiers[index];
    if (!line) return;
    try {
      await line.write(on ? this.opts.tierOnLevel : ((1 - this.opts.tierOnLevel) as Level));
      const loadTiersOn = [...this.s.loadTiersOn];
      loadTiersOn[index] = on;
      this.s = { ...this.s, loadTiersOn, fault: this.faultAfterGoodWrite(line) };
    } catch (e) {
      this.faultLine = line;
      this.s = { ...this.s, fault: lineFault(line, e, this.clock) };
      emitAll(this.listeners);
    }
  }

  private faultAfterGoodWrite(line: DigitalLine): PortFault | undefined {
    if (this.faultLine !== line) return this.s.fault;
    this.faultLine = undefined;
    return undefined;
  }

  async close(): Promise<void> {
    this.unwatch?.();
  }

  onChange(listener: () => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** Emergency-stop input, debounced like the grid sense; `pressedLevel` is the level when pressed. */
export class LineEStop implements EStopPort {
  readonly kind = 'estop' as const;
  private s: EStopState = { pressed: false };
  private listeners = new Set<() => void>();
  private unwatch?: Unsubscribe;

  constructor(private line: DigitalLine, private clock: Clock, private opts: { pressedLevel: Level }) {}

  async open(): Promise<void> {
    this.s = { pressed: this.line.read() === this.opts.pressedLevel };
    this.unwatch = this.line.watch((level) => {
      const pressed = level === this.opts.pressedLevel;
      if (pressed !== this.s.pressed) {
        this.s = { pressed };
        emitAll(this.listeners);
      }
    });
  }

  state(): EStopState {
    return this.s;
  }

  async close(): Promise<void> {
    this.unwatch?.();
  }

  onChange(listener: () => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
