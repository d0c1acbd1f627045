import type { Clock } from './ports.ts';

/** The board's real-time clock. */
export const systemClock: Clock = {
  nowMs: () => Date.now(),
  setTimer: (fn, delayMs) => setTimeout(fn, delayMs),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
  sleep: (delayMs) => new Promise((resolve) => setTimeout(resolve, delayMs)),
};
