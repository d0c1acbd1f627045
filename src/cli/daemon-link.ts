/** Talking to the running daemon over its local socket (src/status-socket.ts), from the CLI. */
import type { Config } from '../config/types.ts';
import { askStatus, statusSocketPath } from '../status-socket.ts';

/**
 * Ask the running daemon to reload now and say what it really did with the change: applied, or needing a
 * restart (by key), or that no daemon is running. Never claims more than the daemon answered.
 */
export async function reloadAnswer(cfg: Config, key: string): Promise<string> {
  let r: { ok?: boolean; applied?: string[]; restartNeeded?: string[]; problems?: string[]; error?: string };
  try {
    r = (await askStatus(statusSocketPath(cfg.storage.path), { cmd: 'reload' }, 5000)) as typeof r;
  } catch (e) {
    return `no running daemon answered (${(e as Error).message}): the change takes effect when it starts`;
  }
  if (r.error) return `the daemon did not reload: ${r.error}`;
  if (!r.ok) return `the daemon refused the file and keeps its last good config: ${(r.problems ?? []).join('; ')}`;
  const related = (k: string) => k === key || k.startsWith(`${key}.`) || key.startsWith(`${k}.`);
  const restart = (r.restartNeeded ?? []).filter(related);
  if (restart.length) return `the running daemon keeps the old value until a restart (sudo systemctl restart wallbox): ${restart.join(', ')} needs a restart`;
  const applied = (r.applied ?? []).filter(related);
  if (applied.length) return `applied by the running daemon: ${applied.join(', ')}`;
  return 'the running daemon already had this value';
}

/** The daemon's status answer, or the reason there is none. */
export async function askDaemonStatus(storagePath: string, timeoutMs = 2000): Promise<{ status?: Record<string, unknown>; error?: string }> {
  try {
    return { status: (await askStatus(statusSocketPath(storagePath), { cmd: 'status' }, timeoutMs)) as Record<string, unknown> };
  } catch (e) {
    return { error: (e as Error).message };
  }
}
