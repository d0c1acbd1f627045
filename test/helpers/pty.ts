/**
 * A pseudo-terminal pair from socat standing in for an RS-485 line: what the Modbus RTU tests and the
 * bus-time bench use. The pair moves bytes at once, whatever the baud rate set on it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);

/** Why an RTU test cannot run here (socat or the serial port bindings missing), or false. */
export function rtuSkipReason(): string | false {
  if (spawnSync('socat', ['-V'], { stdio: 'ignore' }).error) return 'socat is not installed (Debian package "socat"): no pseudo-terminal pair for the RTU line';
  try {
    require('serialport');
    require('modbus-serial').ServerSerial.name;
  } catch (e) {
    return `serial port bindings unavailable: ${(e as Error).message}`;
  }
  return false;
}

export interface PtyPair {
  /** The two ends' paths (symlinks socat makes to /dev/pts/N). */
  a: string;
  b: string;
  /** Resolves once both ends exist; rejects after 2.5 s. */
  ready(): Promise<void>;
  /** Ends socat and removes the links' directory. */
  stop(): void;
}

/** Start socat with two linked ends in a fresh temporary directory. */
export function ptyPair(prefix: string): PtyPair {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const a = join(dir, 'ttyA');
  const b = join(dir, 'ttyB');
  const socat: ChildProcess = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' });
  return {
    a,
    b,
    async ready() {
      for (let i = 0; i < 50 && !(existsSync(a) && existsSync(b)); i++) await new Promise((r) => setTimeout(r, 50));
      if (!(existsSync(a) && existsSync(b))) throw new Error(`socat did not make the pty pair ${a}, ${b} within 2.5 s`);
    },
    stop() {
      socat.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
