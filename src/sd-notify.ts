/**
 * systemd's notify protocol (sd_notify(3)): `READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=...` written as
 * one datagram each to the AF_UNIX socket named by `$NOTIFY_SOCKET`.
 *
 * Node has no Unix datagram sockets, so this uses `unix-dgram`, a small native addon (built from source by
 * node-gyp on install, no prebuilt download) that does exactly socket(AF_UNIX, SOCK_DGRAM)+sendto. Spawning
 * `systemd-notify` instead costs a process per watchdog ping and sends from the child's PID, which systemd
 * accepts only with `NotifyAccess=all`; sending from the main process itself lets the unit say
 * `NotifyAccess=main`.
 *
 * Never throws: a missing socket, a missing addon or a refused send is logged once and then ignored (the
 * watchdog, if configured, will then restart the service, which is the right outcome for a process that
 * cannot tell systemd it is alive).
 */
import { createRequire } from 'node:module';

interface DgramSocket {
  send(buf: Buffer, offset: number, length: number, path: string, cb: (err?: Error) => void): void;
  close(): void;
  on(event: 'error', fn: (e: Error) => void): void;
}

export interface Notifier {
  /** Whether a notify socket was given (the process runs under a Type=notify unit). */
  readonly enabled: boolean;
  /** Send one message (several `KEY=value` lines may be joined with `\n`). */
  notify(state: string): void;
  close(): void;
}

const noop: Notifier = { enabled: false, notify: () => {}, close: () => {} };

/** STATUS= is shown by `systemctl status`; keep it one short line. */
export function statusMessage(text: string): string {
  return `STATUS=${text.replace(/[\r\n]+/g, ' ').slice(0, 200)}`;
}

export function createNotifier(env: NodeJS.ProcessEnv, warn: (msg: string) => void = () => {}): Notifier {
  const path = env.NOTIFY_SOCKET;
  if (!path) return noop;
  if (path.startsWith('@')) {
    // abstract-namespace sockets (used by some user managers) need a NUL-prefixed address the addon cannot pass
    warn(`NOTIFY_SOCKET ${path} is an abstract socket, which this build cannot write to: no readiness or watchdog notifications`);
    return noop;
  }
  let sock: DgramSocket;
  try {
    const require = createRequire(import.meta.url);
    const dgram = require('unix-dgram') as { createSocket(type: 'unix_dgram'): DgramSocket };
    sock = dgram.createSocket('unix_dgram');
  } catch (e) {
    warn(`cannot open a datagram socket for NOTIFY_SOCKET (${(e as Error).message}): no readiness or watchdog notifications`);
    return noop;
  }
  let warned = false;
  sock.on('error', (e) => {
    if (!warned) warn(`notify socket ${path}: ${e.message}`);
    warned = true;
  });
  let closed = false;
  return {
    enabled: true,
    notify(state: string) {
      if (closed) return;
      const buf = Buffer.from(state, 'utf8');
      try {
        sock.send(buf, 0, buf.length, path, (err) => {
          if (err && !warned) {
            warned = true;
            warn(`notify socket ${path}: ${err.message}`);
          }
        });
      } catch (e) {
        if (!warned) warn(`notify socket ${path}: ${(e as Error).message}`);
        warned = true;
      }
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        sock.close();
      } catch {
        // already gone
      }
    },
  };
}
