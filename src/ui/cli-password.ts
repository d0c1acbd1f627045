/**
 * `wallbox ui password [--config FILE]`: sets the web page's password. Asked twice without echo on a
 * terminal; read from the first line of standard input otherwise (`echo "$PW" | wallbox ui password`).
 * Stored as a scrypt hash beside the database (src/ui/auth.ts); the running daemon uses it at the next
 * login and ends the sessions of the old password. No restart.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, localConfigPath } from '../config/load.ts';
import { hashPassword, passwordFilePath, passwordProblems, writePasswordFile } from './auth.ts';

export interface PasswordIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  /** The password as typed (tests); default: the terminal or standard input. */
  readPassword?: (prompt: string) => Promise<string>;
}

const USAGE = 'usage: wallbox ui password [--config FILE]   set the web page password (docs/web.md)';

/** One line from standard input; on a terminal without echo. */
function readSecret(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    return new Promise((res, rej) => {
      let buf = '';
      const onData = (d: Buffer) => {
        buf += d.toString('utf8');
        const nl = buf.indexOf('\n');
        if (nl >= 0 || buf.length > 4096) finish(buf.slice(0, nl >= 0 ? nl : 4096));
      };
      const finish = (line: string) => {
        stdin.off('data', onData);
        stdin.off('end', onEnd);
        stdin.pause();
        res(line.replace(/\r$/, ''));
      };
      const onEnd = () => finish(buf);
      stdin.on('data', onData);
      stdin.once('end', onEnd);
      stdin.once('error', rej);
    });
  }
  return new Promise((res) => {
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let line = '';
    const onData = (d: Buffer) => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          stdin.setRawMode(false);
          stdin.pause();
          stdin.off('data', onData);
          process.stderr.write('\n');
          return res(line);
        }
        if (ch === '\u0003') {
          stdin.setRawMode(false);
          process.stderr.write('\n');
          process.exit(130);
        }
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else line += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** Returns the exit code: 0 set, 1 refused or not written, 2 bad arguments. */
export async function uiCommand(args: string[], io: PasswordIo): Promise<number> {
  let values: { config?: string };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args, options: { config: { type: 'string' } }, allowPositionals: true, strict: true }) as { values: { config?: string }; positionals: string[] });
  } catch (e) {
    io.err(`wallbox ui: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (positionals.length !== 1 || positionals[0] !== 'password') {
    io.err(`wallbox ui: ${positionals.length ? `unknown subcommand "${positionals.join(' ')}"` : 'needs a subcommand'}\n${USAGE}`);
    return 2;
  }
  const cfg = loadConfig(values.config ?? localConfigPath(io.env));
  const path = passwordFilePath(cfg.storage.path);
  const read = io.readPassword ?? readSecret;
  const interactive = !io.readPassword && process.stdin.isTTY;
  const pw = await read('new web page password: ');
  const problems = passwordProblems(pw);
  if (problems.length) {
    io.err(`wallbox ui password: ${problems.join('; ')}; nothing was changed`);
    return 1;
  }
  if (interactive && (await read('the same again: ')) !== pw) {
    io.err('wallbox ui password: the two passwords differ; nothing was changed');
    return 1;
  }
  try {
    mkdirSync(dirname(path), { recursive: true });
    writePasswordFile(path, await hashPassword(pw));
  } catch (e) {
    io.err(`wallbox ui password: cannot write ${path}: ${(e as Error).message} (run it as the service user or with sudo); nothing was changed`);
    return 1;
  }
  io.out(`web page password set (scrypt hash in ${path}); the running daemon uses it at the next login, and earlier sessions are ended`);
  return 0;
}
