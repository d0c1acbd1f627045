/**
 * Status LED on one output line. The runtime says what it is doing (`setStatus`); the LED shows it as a
 * blink pattern an installer can read from across the garage. Timing comes from the injected Clock so the
 * patterns run under the virtual clock too, and a pattern that stops blinking means the event loop is stuck.
 */
import type { Clock, PortFault } from '../ports.ts';
import type { DigitalLine, Level } from './lines.ts';

export type LedStatus = 'ok' | 'fault' | 'backup';

/** One step of a pattern: LED lit or dark for `durationMs`. */
export interface BlinkStep {
  lit: boolean;
  durationMs: number;
}

/**
 * - ok: a 100 ms heartbeat flash every 2 s (steady light would look the same from a hung process);
 * - backup: slow even blink, 1 s lit / 1 s dark, the house runs from the car;
 * - fault: fast blink, 150 ms lit / 150 ms dark.
 */
export const LED_PATTERNS: Record<LedStatus, readonly BlinkStep[]> = {
  ok: [
    { lit: true, durationMs: 100 },
    { lit: false, durationMs: 1900 },
  ],
  backup: [
    { lit: true, durationMs: 1000 },
    { lit: false, durationMs: 1000 },
  ],
  fault: [
    { lit: true, durationMs: 150 },
    { lit: false, durationMs: 150 },
  ],
};

export interface StatusLedState {
  status?: LedStatus;
  /** Whether the LED is lit now (as last written successfully). */
  lit: boolean;
  fault?: PortFault;
}

export class StatusLed {
  private s: StatusLedState = { lit: false };
  private timer: unknown;
  private step = 0;
  private closed = false;

  constructor(private line: DigitalLine, private clock: Clock, private opts: { onLevel: Level } = { onLevel: 1 }) {}

  /** Start showing `status`; calling it again with the same status keeps the pattern's rhythm. */
  setStatus(status: LedStatus): void {
    if (this.closed || status === this.s.status) return;
    this.s = { ...this.s, status };
    this.cancelTimer();
    this.step = 0;
    this.runStep();
  }

  state(): StatusLedState {
    return this.s;
  }

  /** Stop blinking and leave the LED dark. Never rejects. */
  async close(): Promise<void> {
    this.closed = true;
    this.cancelTimer();
    await this.drive(false);
  }

  private runStep(): void {
    const status = this.s.status;
    if (this.closed || !status) return;
    const pattern = LED_PATTERNS[status];
    const step = pattern[this.step % pattern.length];
    this.step = (this.step + 1) % pattern.length;
    void this.drive(step.lit);
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.runStep();
    }, step.durationMs);
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
  }

  private async drive(lit: boolean): Promise<void> {
    const level: Level = lit ? this.opts.onLevel : ((1 - this.opts.onLevel) as Level);
    try {
      await this.line.write(level);
      this.s = { ...this.s, lit, fault: undefined };
    } catch (e) {
      // an LED is not worth stopping for; keep the cause for `wallbox status` and try again on the next step
      if (!this.s.fault)
        this.s = {
          ...this.s,
          fault: { code: 'io_error', message: `GPIO ${this.line.name}: ${(e as Error)?.message ?? String(e)}`, sinceMs: this.clock.nowMs() },
        };
    }
  }
}
