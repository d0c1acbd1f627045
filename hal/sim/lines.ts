/** Stand-in digital lines: the same edge semantics as the board's lines, driven from code. */
import type { Unsubscribe } from '../ports.ts';
import type { DigitalLine, Level } from '../gpio/lines.ts';
import { BoundedLog } from './bounded-log.ts';

export class SimLine implements DigitalLine {
  private level: Level;
  private listeners = new Set<(level: Level) => void>();
  private readonly writeLog = new BoundedLog<Level>(4096);
  /** When set, write() rejects with this error (a line that broke). */
  failWith?: Error;

  constructor(readonly name: string, initial: Level = 0) {
    this.level = initial;
  }

  /** The most recent writes (bounded), oldest first, for tests that check actuation order. */
  get writes(): Level[] {
    return this.writeLog.toArray();
  }

  /** Writes since the line was made. */
  get writeCount(): number {
    return this.writeLog.total;
  }

  read(): Level {
    return this.level;
  }

  async write(level: Level): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.writeLog.push(level);
    this.set(level);
  }

  /** Drive the line from outside (an input's electrical level changes); fires watchers on an edge. */
  set(level: Level): void {
    if (level === this.level) return;
    this.level = level;
    for (const l of [...this.listeners]) l(level);
  }

  watch(listener: (level: Level) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.listeners.clear();
  }
}
