/**
 * One life of the controlling process, for simulating a crash or a watchdog restart: the runtime's
 * clock, ports and store are handed out through an incarnation, and `kill()` ends everything that life
 * had running at once — its timers never fire, its port calls go nowhere and never return, device
 * events no longer reach it, its store calls fail — without any cleanup (no power to zero, no stop()),
 * as with SIGKILL or a board reset. The simulated devices behind the ports keep their state; a new
 * incarnation's runtime finds them as the last one left them.
 */
import type { Clock, Ports } from '../ports.ts';

/** Port methods that act on or read from a device (what a dead process can no longer do). */
const ACTIONS = new Set(['open', 'refresh', 'setPowerW', 'setGridForming', 'setContactor', 'setLoadTier', 'setPowerLimitW', 'close']);

export class Incarnation {
  private alive = true;
  private readonly timers = new Set<unknown>();
  readonly clock: Clock;

  constructor(private readonly base: Clock) {
    const self = this;
    this.clock = {
      nowMs: () => base.nowMs(),
      wallMs: () => base.wallMs(),
      setTimer(fn: () => void, delayMs: number): unknown {
        if (!self.alive) return undefined;
        const handle: unknown = base.setTimer(() => {
          self.timers.delete(handle);
          if (self.alive) fn();
        }, delayMs);
        self.timers.add(handle);
        return handle;
      },
      clearTimer(handle: unknown): void {
        if (handle === undefined) return;
        self.timers.delete(handle);
        base.clearTimer(handle);
      },
      sleep(delayMs: number): Promise<void> {
        return new Promise((resolve) => this.setTimer(resolve, delayMs));
      },
    };
  }

  get isAlive(): boolean {
    return this.alive;
  }

  /** The process dies: its timers are dropped and its ports and store go dead. */
  kill(): void {
    this.alive = false;
    for (const h of this.timers) this.base.clearTimer(h);
    this.timers.clear();
  }

  /** Ports as this process sees them; the clock in them is this incarnation's. */
  ports(p: Ports): Ports {
    const out: Ports = { clock: this.clock, inverter: this.port(p.inverter), vehicle: this.port(p.vehicle) };
    if (p.gridSense) out.gridSense = this.port(p.gridSense);
    if (p.relays) out.relays = this.port(p.relays);
    if (p.estop) out.estop = this.port(p.estop);
    if (p.siteMeter) out.siteMeter = this.port(p.siteMeter);
    return out;
  }

  /** A port whose actions go nowhere (and never settle) once the process is dead, and whose events stop. */
  port<T extends object>(target: T): T {
    return wrapMethods(target, (prop, fn, t) => {
      if (prop === 'onChange')
        return (listener: () => void) =>
          (fn as (l: () => void) => () => void).call(t, () => {
            if (this.alive) listener();
          });
      if (typeof prop === 'string' && ACTIONS.has(prop))
        return (...args: unknown[]) => (this.alive ? fn.apply(t, args) : new Promise(() => {}));
      return fn.bind(t);
    });
  }

  /** A store (or any object) whose every method throws once the process is dead. */
  store<T extends object>(target: T): T {
    return wrapMethods(target, (_prop, fn, t) => (...args: unknown[]) => {
      if (!this.alive) throw new Error('the process that owned this store is gone');
      return fn.apply(t, args);
    });
  }
}

type AnyMethod = (...a: unknown[]) => unknown;

/**
 * A proxy of `target` whose methods are replaced by `wrap(prop, method, target)`, made once per method:
 * the loop calls state() and friends many times a tick.
 */
function wrapMethods<T extends object>(target: T, wrap: (prop: PropertyKey, fn: AnyMethod, t: T) => unknown): T {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get: (t, prop, receiver) => {
      const v = Reflect.get(t, prop, receiver);
      if (typeof v !== 'function') return v;
      let w = wrapped.get(prop);
      if (w === undefined) {
        w = wrap(prop, v as AnyMethod, t);
        wrapped.set(prop, w);
      }
      return w;
    },
  });
}
