/** Guarded calls: nothing a port or the store throws escapes the loop. */
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

export function withTimeout(p: Promise<void>, ms: number, clock: Clock): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const handle = clock.setTimer(() => {
      if (!done) {
        done = true;
        resolve();
      }
    }, ms);
    p.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      if (!done) {
        done = true;
        clock.clearTimer(handle);
        resolve();
      }
    });
  });
}
