/**
 * Stand-ins for runtime tests: an inverter port that can hang or answer slowly on the virtual clock,
 * wrapped around a simulated one, and helpers that move the virtual clock without relying on the
 * runtime's own `settled()` (so a test of a stall cannot itself stall).
 */
import type { Clock, InverterPort, InverterState, Ports, Unsubscribe } from '../../hal/ports.ts';
import type { VirtualClock } from '../../hal/sim/virtual-clock.ts';

export type InverterMethod = 'open' | 'refresh' | 'setPowerW' | 'setGridForming' | 'close';

export interface CallRecord {
  method: InverterMethod;
  value?: number | boolean;
  startedMs: number;
  /** When the call answered (resolved or rejected); undefined while it has not. */
  answeredMs?: number;
}

/**
 * An inverter that delegates to `inner` and can be made to misbehave per method:
 * - `hang`: the call never answers until `release()` (then it does nothing and resolves);
 * - `delayMs`: the call answers after this long on the clock, then does what `inner` does.
 */
export class ControlledInverter implements InverterPort {
  readonly kind = 'inverter' as const;
  readonly calls: CallRecord[] = [];
  hang = new Set<InverterMethod>();
  delayMs: Partial<Record<InverterMethod, number>> = {};
  private held: (() => void)[] = [];

  constructor(readonly inner: InverterPort, private readonly clock: Clock) {}

  /** Calls not answered yet. */
  pending(method?: InverterMethod): CallRecord[] {
    return this.calls.filter((c) => c.answeredMs === undefined && (method === undefined || c.method === method));
  }

  /** Let every held call answer (without acting on the device: it never took those commands). */
  release(): void {
    this.hang.clear();
    const held = this.held;
    this.held = [];
    for (const r of held) r();
  }

  private async run(method: InverterMethod, value: number | boolean | undefined, act: () => Promise<void>): Promise<void> {
    const rec: CallRecord = { method, value, startedMs: this.clock.nowMs() };
    this.calls.push(rec);
    try {
      if (this.hang.has(method)) {
        await new Promise<void>((resolve) => this.held.push(resolve));
        return;
      }
      const d = this.delayMs[method];
      if (d !== undefined && d > 0) await this.clock.sleep(d);
      await act();
    } finally {
      rec.answeredMs = this.clock.nowMs();
    }
  }

  open(): Promise<void> {
    return this.run('open', undefined, () => this.inner.open());
  }
  refresh(): Promise<void> {
    return this.run('refresh', undefined, () => this.inner.refresh());
  }
  state(): InverterState {
    return this.inner.state();
  }
  setPowerW(powerW: number): Promise<void> {
    return this.run('setPowerW', powerW, () => this.inner.setPowerW(powerW));
  }
  setGridForming(on: boolean): Promise<void> {
    return this.run('setGridForming', on, () => this.inner.setGridForming(on));
  }
  close(): Promise<void> {
    return this.run('close', undefined, () => this.inner.close());
  }
  onChange(listener: () => void): Unsubscribe {
    return this.inner.onChange(listener);
  }
}

/** Let every promise chain that needs no clock time run (a few macrotask turns). */
export async function flush(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Advance the clock in steps of `stepMs` until `done()` holds or `limitMs` has passed; returns whether it held. */
export async function stepUntil(clock: VirtualClock, done: () => boolean, limitMs: number, stepMs = 1): Promise<boolean> {
  const end = clock.nowMs() + limitMs;
  await flush();
  while (!done()) {
    if (clock.nowMs() >= end) return false;
    clock.advance(stepMs);
    await flush();
  }
  return true;
}

/** Await `p` while moving the clock (for calls that wait on clock time); rejects if it takes longer than `limitMs`. */
export async function drive<T>(clock: VirtualClock, p: Promise<T>, limitMs = 120_000, stepMs = 10): Promise<T> {
  let done = false;
  let value: T | undefined;
  let error: unknown;
  let failed = false;
  p.then(
    (v) => {
      done = true;
      value = v;
    },
    (e) => {
      done = true;
      failed = true;
      error = e;
    },
  );
  const ok = await stepUntil(clock, () => done, limitMs, stepMs);
  if (!ok) throw new Error(`still waiting after ${limitMs} ms of clock time`);
  if (failed) throw error;
  return value as T;
}

/**
 * One life of the controlling process: ports, clock and store handed to a runtime through it, and
 * `kill()` ends that life as SIGKILL would (no stop(), no power to zero): its timers never fire, its
 * port calls never answer, device events stop reaching it, its store calls throw. The devices behind
 * keep their state for the next life.
 */
export class ProcessLife {
  private alive = true;
  private readonly timers = new Set<unknown>();
  readonly clock: Clock;

  constructor(private readonly base: Clock) {
    const life = this;
    this.clock = {
      nowMs: () => base.nowMs(),
      wallMs: () => base.wallMs(),
      setTimer(fn: () => void, delayMs: number): unknown {
        if (!life.alive) return undefined;
        const h: unknown = base.setTimer(() => {
          life.timers.delete(h);
          if (life.alive) fn();
        }, delayMs);
        life.timers.add(h);
        return h;
      },
      clearTimer(h: unknown): void {
        life.timers.delete(h);
        base.clearTimer(h);
      },
      sleep(delayMs: number): Promise<void> {
        return new Promise((resolve) => this.setTimer(resolve, delayMs));
      },
    };
  }

  kill(): void {
    this.alive = false;
    for (const h of this.timers) this.base.clearTimer(h);
    this.timers.clear();
  }

  wrap<T extends object>(target: T, dead: 'hang' | 'throw' = 'hang'): T {
    return new Proxy(target, {
      get: (t, prop) => {
        const v = Reflect.get(t, prop, t);
        if (typeof v !== 'function') return v;
        if (prop === 'onChange')
          return (listener: () => void) => (v as (l: () => void) => () => void).call(t, () => {
            if (this.alive) listener();
          });
        return (...args: unknown[]) => {
          if (this.alive) return (v as (...a: unknown[]) => unknown).apply(t, args);
          if (dead === 'throw') throw new Error('the process is gone');
          return new Promise(() => {});
        };
      },
    });
  }

  ports(p: Ports): Ports {
    const out: Ports = { clock: this.clock, inverter: this.wrap(p.inverter), vehicle: this.wrap(p.vehicle) };
    if (p.gridSense) out.gridSense = this.wrap(p.gridSense);
    if (p.relays) out.relays = this.wrap(p.relays);
    if (p.estop) out.estop = this.wrap(p.estop);
    if (p.siteMeter) out.siteMeter = this.wrap(p.siteMeter);
    return out;
  }
}
