/**
 * Local status socket: `wallbox status` asks the running daemon over a Unix socket beside the database,
 * so status costs no writes to the SD card. One JSON request per line, one JSON answer per line.
 */
import { createConnection, createServer, type Server } from 'node:net';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export function statusSocketPath(storagePath: string): string {
  return join(dirname(resolve(storagePath)), 'wallbox.sock');
}

export async function serveStatus(path: string, answer: (request: { cmd?: unknown }) => unknown | Promise<unknown>): Promise<Server> {
  // a socket file left by a killed daemon would make listen() fail
  if (existsSync(path)) {
    const alive = await new Promise<boolean>((res) => {
      const c = createConnection(path);
      c.once('connect', () => {
        c.destroy();
        res(true);
      });
      c.once('error', () => res(false));
    });
    if (alive) throw new Error(`another wallbox daemon answers on ${path}`);
    unlinkSync(path);
  }
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > 65536) return sock.destroy();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        // answers may be async (a reload reads the config file); a failing one is an error reply, never a rejection
        void Promise.resolve()
          .then(() => answer(JSON.parse(line) as { cmd?: unknown }))
          .catch((e: unknown) => ({ error: (e as Error)?.message ?? String(e) }))
          .then((reply) => {
            if (!sock.destroyed) sock.write(JSON.stringify(reply) + '\n');
          });
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(path, () => res());
  });
  // owner and group (the wallbox group on an install) may ask; others need sudo. The umask would leave
  // the group without write, and connecting to a Unix socket needs write permission on it.
  try {
    chmodSync(path, 0o660);
  } catch {
    // a file system without modes: the umask's default stays
  }
  return server;
}

export function askStatus(path: string, request: object, timeoutMs = 2000): Promise<unknown> {
  return new Promise((res, rej) => {
    const c = createConnection(path);
    let buf = '';
    const t = setTimeout(() => {
      c.destroy();
      rej(new Error(`no answer from the daemon on ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.once('connect', () => c.write(JSON.stringify(request) + '\n'));
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        c.end();
        try {
          res(JSON.parse(buf.slice(0, nl)));
        } catch (e) {
          rej(e as Error);
        }
      }
    });
    c.once('error', (e) => {
      clearTimeout(t);
      rej(new Error(`the daemon is not running (${(e as NodeJS.ErrnoException).code ?? e.message} on ${path})`));
    });
  });
}
