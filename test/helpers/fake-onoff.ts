/**
 * A stand-in for onoff's Gpio on a board that exists only in memory: same method shapes and edge semantics
 * (interrupts on the configured edges, a trailing bounce filter that reads the value when it fires, export
 * errors thrown from the constructor), with electrical levels driven from the test and timers on the
 * injected clock.
 */
import type { Clock } from '../../hal/ports.ts';
import type { GpioDirection, GpioEdge, GpioFactory, GpioLike, GpioOpenOptions, GpioValueCallback } from '../../hal/gpio/onoff.ts';

type Bit = 0 | 1;

function sysError(code: string, message: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

export class FakeGpio implements GpioLike {
  /** Every value written, in order. */
  readonly writes: Bit[] = [];
  /** When set, readSync throws it. */
  failRead?: Error;
  /** When set, write rejects with it. */
  failWrite?: Error;
  released = false;
  private listeners: GpioValueCallback[] = [];
  private debounceTimer: unknown;

  constructor(
    private board: FakeGpioBoard,
    readonly pin: number,
    readonly direction: 'in' | 'out',
    readonly edge: GpioEdge,
    readonly options: GpioOpenOptions,
  ) {}

  private get activeLow(): boolean {
    return this.board.activeLowOf(this.pin);
  }

  readSync(): Bit {
    if (this.released) throw sysError('EBADF', 'bad file descriptor, read');
    if (this.failRead) throw this.failRead;
    const level = this.board.level(this.pin);
    return (this.activeLow ? 1 - level : level) as Bit;
  }

  write(value: Bit): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.released) return reject(sysError('EBADF', 'bad file descriptor, write'));
      if (this.failWrite) return reject(this.failWrite);
      this.writes.push(value);
      this.board.setLevel(this.pin, (this.activeLow ? 1 - value : value) as Bit);
      resolve();
    });
  }

  watch(callback: GpioValueCallback): void {
    this.listeners.push(callback);
  }

  unwatch(callback?: GpioValueCallback): void {
    this.listeners = callback ? this.listeners.filter((l) => l !== callback) : [];
  }

  unwatchAll(): void {
    this.unwatch();
  }

  unexport(): void {
    this.unwatchAll();
    if (this.debounceTimer !== undefined) this.board.clock.clearTimer(this.debounceTimer);
    this.released = true;
    this.board.release(this.pin, this);
  }

  listenerCount(): number {
    return this.listeners.length;
  }

  /** The board saw an electrical edge on this pin. */
  interrupt(): void {
    if (this.direction !== 'in' || this.edge === 'none' || this.listeners.length === 0) return;
    const handler = () => {
      let value: Bit;
      let err: Error | null = null;
      try {
        value = this.readSync();
      } catch (e) {
        // onoff's poller reads the value unguarded; a failing read there surfaces as an error argument here
        err = e as Error;
        value = undefined as unknown as Bit;
      }
      const rising = this.edge === 'both' || this.edge === 'rising';
      const falling = this.edge === 'both' || this.edge === 'falling';
      if (err || (value === 1 && rising) || (value === 0 && falling)) for (const l of this.listeners.slice()) l(err, value);
    };
    const debounceMs = this.options.debounceTimeout ?? 0;
    if (debounceMs > 0) {
      if (this.debounceTimer !== undefined) this.board.clock.clearTimer(this.debounceTimer);
      this.debounceTimer = this.board.clock.setTimer(() => {
        this.debounceTimer = undefined;
        handler();
      }, debounceMs);
    } else handler();
  }
}

/** The in-memory board: electrical levels per pin, which pins exist, which are held elsewhere. */
export class FakeGpioBoard {
  /** Pins that do not exist on this board (export fails with EINVAL). */
  readonly missing = new Set<number>();
  /** Pins held by another driver (export fails with EBUSY). */
  readonly busy = new Set<number>();
  /** Pins another program left with active_low set. */
  readonly activeLowPins = new Set<number>();
  /** Every Gpio object handed out, in order. */
  readonly opened: FakeGpio[] = [];
  private levels = new Map<number, Bit>();
  private exported = new Map<number, FakeGpio>();
  private outputs = new Set<number>();

  constructor(readonly clock: Clock) {}

  level(pin: number): Bit {
    return this.levels.get(pin) ?? 0;
  }

  activeLowOf(pin: number): boolean {
    return this.activeLowPins.has(pin);
  }

  setLevel(pin: number, level: Bit): void {
    const before = this.level(pin);
    this.levels.set(pin, level);
    if (before !== level) this.exported.get(pin)?.interrupt();
  }

  /** Drive an input pin from outside (the grid came back, the button was pressed...). */
  drive(pin: number, level: Bit): void {
    this.setLevel(pin, level);
  }

  /** Mark a pin as already claimed as an output holding `level` (a previous run of the process). */
  preExportOutput(pin: number, level: Bit): void {
    this.outputs.add(pin);
    this.levels.set(pin, level);
  }

  gpio(pin: number): FakeGpio {
    const g = this.exported.get(pin);
    if (!g) throw new Error(`GPIO ${pin} not exported`);
    return g;
  }

  isExported(pin: number): boolean {
    return this.exported.has(pin);
  }

  release(pin: number, g: FakeGpio): void {
    if (this.exported.get(pin) === g) this.exported.delete(pin);
    this.outputs.delete(pin);
  }

  /** Same signature as onoff's constructor; throws the errors sysfs gives. */
  readonly factory: GpioFactory = (pin: number, direction: GpioDirection, edge: GpioEdge, options: GpioOpenOptions): GpioLike => {
    if (this.missing.has(pin)) throw sysError('EINVAL', 'invalid argument, write');
    if (this.busy.has(pin) || this.exported.has(pin)) throw sysError('EBUSY', 'resource busy or locked, write');
    if (typeof options.activeLow === 'boolean') {
      if (options.activeLow) this.activeLowPins.add(pin);
      else this.activeLowPins.delete(pin);
    }
    const wasOutput = this.outputs.has(pin);
    const keep = options.reconfigureDirection === false && wasOutput && (direction === 'high' || direction === 'low' || direction === 'out');
    if (!keep) {
      if (direction === 'high' || direction === 'low') {
        const logical: Bit = direction === 'high' ? 1 : 0;
        this.levels.set(pin, (this.activeLowOf(pin) ? 1 - logical : logical) as Bit);
      } else if (direction === 'out') this.levels.set(pin, this.activeLowOf(pin) ? 1 : 0);
    }
    const dir = direction === 'in' ? 'in' : 'out';
    if (dir === 'out') this.outputs.add(pin);
    const g = new FakeGpio(this, pin, dir, dir === 'in' ? edge : 'none', options);
    this.exported.set(pin, g);
    this.opened.push(g);
    return g;
  };
}
