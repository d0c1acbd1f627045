/**
 * The uplink's timers (reconnect backoff, connect watchdog, supervisor) come from an injected clock, the
 * hal `Clock` port's timer half, so tests can run them on the virtual clock. Network I/O itself is real.
 */
import type { Clock } from '../../hal/ports.ts';
import { systemClock } from '../../hal/system-clock.ts';

export type UplinkTimer = Pick<Clock, 'nowMs' | 'wallMs' | 'setTimer' | 'clearTimer'>;

/** Real time; the timers do not keep the process alive (a stopped daemon exits). */
export const realTimer: UplinkTimer = {
  nowMs: () => systemClock.nowMs(),
  wallMs: () => Date.now(),
  setTimer: (fn, delayMs) => {
    const t = setTimeout(fn, delayMs);
    t.unref();
    return t;
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** Resolves with `p`, or with undefined after `ms` of the timer's time; never rejects. */
export async function withTimeout<T>(timer: UplinkTimer, p: Promise<T>, ms: number): Promise<T | undefined> {
  let h: unknown;
  const timeout = new Promise<undefined>((resolve) => {
    h = timer.setTimer(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p.catch(() => undefined), timeout]);
  } finally {
    timer.clearTimer(h);
  }
}
