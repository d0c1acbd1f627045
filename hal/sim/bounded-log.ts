/**
 * A ring of the most recent records, with a count of every record ever pushed. The simulator keeps
 * logs of commands and line writes for tests that check their order; a simulated year or a fleet of
 * homes cannot keep every one, so only the last `capacity` are held.
 */
export class BoundedLog<T> {
  private readonly buf: T[] = [];
  private head = 0;
  /** Records pushed since the log was made (including those no longer held). */
  total = 0;

  constructor(readonly capacity = 4096) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`BoundedLog capacity must be a positive integer, got ${capacity}`);
  }

  push(item: T): void {
    this.total++;
    if (this.buf.length < this.capacity) {
      this.buf.push(item);
      return;
    }
    this.buf[this.head] = item;
    this.head = (this.head + 1) % this.capacity;
  }

  /** Records pushed and no longer held. */
  get dropped(): number {
    return this.total - this.buf.length;
  }

  /** The held records, oldest first (a copy). */
  toArray(): T[] {
    return this.head === 0 ? [...this.buf] : [...this.buf.slice(this.head), ...this.buf.slice(0, this.head)];
  }

  /** The most recent record, if any. */
  last(): T | undefined {
    if (this.buf.length === 0) return undefined;
    return this.buf[(this.head + this.buf.length - 1) % this.buf.length];
  }
}
