/** A real SQLite store file in a temporary directory for runtime tests that restart: each life opens it again. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/index.ts';

/**
 * A temporary directory with one store path; `open()` opens the file again (a new process life). After
 * the test every store opened is closed (one closed already, or whose life was killed, is passed over)
 * and the directory removed.
 */
export function storeFiles(t: { after(fn: () => void): void }, prefix: string): { dir: string; path: string; open(): Store } {
  const dir = mkdtempSync(join(tmpdir(), `wallbox-${prefix}-`));
  const path = join(dir, 'w.db');
  const stores: Store[] = [];
  t.after(() => {
    for (const s of stores) {
      try {
        s.close();
      } catch {
        // closed already, or its life was killed
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    path,
    open() {
      const s = openStore(path, { timezone: 'UTC' });
      stores.push(s);
      return s;
    },
  };
}
