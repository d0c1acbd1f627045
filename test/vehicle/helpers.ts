/** Shared test plumbing for the vehicle link tests: bounded waits and a log collector. */
import type { LogFn } from '../../hal/vehicle/everest.ts';

export const T0_MS = Date.UTC(2026, 10, 23, 18, 0, 0);

/** Poll `cond` in real time until it holds, at most `tries` times `stepMs` apart; throws with `what` if it never does. */
export async function waitFor(cond: () => boolean, what: string, tries = 400, stepMs = 10): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  if (!cond()) throw new Error(`timed out waiting for: ${what}`);
}

export function logCollector(): { log: LogFn; lines: string[] } {
  const lines: string[] = [];
  return { lines, log: (level, message) => void lines.push(`${level}: ${message}`) };
}
