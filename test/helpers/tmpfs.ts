/** Small real file systems for storage-failure tests: a tmpfs of a given size, mounted for one test. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A tmpfs of `sizeKiB` at a fresh directory, or undefined where mounting is not permitted. */
export function tinyFs(t: { after: (fn: () => void) => void }, sizeKiB: number): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  t.after(() => {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Why a tmpfs test is skipped. */
export const NO_MOUNT = 'mounting a tmpfs is not permitted here (needs root)';
