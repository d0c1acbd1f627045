/** Polling for tests that watch a real process, broker or browser: the one place its bound and its failure message live. */

/**
 * Call `fn` every `everyMs` until it gives something other than undefined (a throw counts as "not yet"),
 * at most `tries` times; then fail naming `what` and the last error seen.
 */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, tries = 150, everyMs = 100): Promise<T> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last: ${last instanceof Error ? last.message : String(last)})` : ''}`);
}
