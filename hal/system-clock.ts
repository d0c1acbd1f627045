import { performance } from 'node:perf_hooks';
import type { Clock } from './ports.ts';

/**
 * The board's clocks: `nowMs()` is `performance.now()` (CLOCK_MONOTONIC) anchored once to the wall clock at
 * start, so ages and timers survive the wall clock being set; `wallMs()` is the wall clock itself.
 */
const anchorWallMs = Date.now();
const anchorPerfMs = performance.now();

export const systemClock: Clock = {
  nowMs: () => anchorWallMs + (performance.now() - anchorPerfMs),
  wallMs: () => Date.now(),
  setTimer: (fn, delayMs) => setTimeout(fn, delayMs),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
  sleep: (delayMs) => new Promise((resolve) => setTimeout(resolve, delayMs)),
};
