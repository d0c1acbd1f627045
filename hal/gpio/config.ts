/**
 * The `gpio` config section: which board line does what, and at which electrical level.
 * Parsed and checked here (not only by the JSON schema) so the driver can refuse a bad wiring on its own,
 * with every problem named by its dotted key.
 */
import type { Level } from './lines.ts';

export type GpioDriver = 'onoff' | 'sim' | 'none';

export interface GridSenseWiring {
  pin: number;
  /** Electrical level that means "grid voltage present". */
  activeLevel: Level;
  /** A new level must hold this long before it counts, ms. */
  debounceMs: number;
}

export interface ContactorWiring {
  pin: number;
  /** Output level that closes the grid contactor (house on the grid). */
  closedLevel: Level;
}

export interface ContactorFeedbackWiring {
  pin: number;
  /** Input level that means the auxiliary contact reports the contactor closed. */
  closedLevel: Level;
  /** Filter on the auxiliary contact's bounce, ms; 0 = none. */
  debounceMs: number;
}

export interface LoadShedWiring {
  pin: number;
  /** Output level that powers the loads behind this relay. */
  onLevel: Level;
  label: string;
}

export interface EStopWiring {
  pin: number;
  pressedLevel: Level;
  /** Filter on the button's bounce, ms; 0 = act on the first edge. */
  debounceMs: number;
}

export interface StatusLedWiring {
  pin: number;
  /** Output level that lights the LED. */
  onLevel: Level;
}

/** The `gpio` section with every default filled in. */
export interface GpioSettings {
  driver: GpioDriver;
  gridSense?: GridSenseWiring;
  contactor?: ContactorWiring;
  contactorFeedback?: ContactorFeedbackWiring;
  /** Load-shed relay tiers; index 0 = tier 1, shed first. */
  loadShed: LoadShedWiring[];
  estop?: EStopWiring;
  statusLed?: StatusLedWiring;
}

/**
 * Defaults. 10 ms of debounce covers the contact bounce of a voltage-monitoring relay (a few ms) while
 * keeping grid-loss detection far inside the 2 s an unintentional island must be left within.
 */
export const GPIO_DEFAULTS = {
  gridSenseDebounceMs: 10,
  gridSenseActiveLevel: 1 as Level,
  contactorClosedLevel: 1 as Level,
  feedbackClosedLevel: 1 as Level,
  feedbackDebounceMs: 0,
  loadShedOnLevel: 1 as Level,
  estopPressedLevel: 1 as Level,
  estopDebounceMs: 0,
  statusLedOnLevel: 1 as Level,
} as const;

/** Highest line number accepted; sysfs numbers on the boards we target stay well below it. */
export const MAX_GPIO_PIN = 1023;
const MAX_DEBOUNCE_MS = 10_000;

/** A `gpio` section that cannot be used; `problems` are `"gpio.key: rule"` strings. */
export class GpioConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid gpio config:\n  - ${problems.join('\n  - ')}`);
    this.name = 'GpioConfigError';
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const ROLE_KEYS: Record<string, readonly string[]> = {
  gridSense: ['pin', 'activeLevel', 'debounceMs'],
  contactor: ['pin', 'closedLevel'],
  contactorFeedback: ['pin', 'closedLevel', 'debounceMs'],
  loadShed: ['pin', 'onLevel', 'label'],
  estop: ['pin', 'pressedLevel', 'debounceMs'],
  statusLed: ['pin', 'onLevel'],
};

class Reader {
  problems: string[] = [];
  /** pin -> the key that claimed it first, to name both ends of a clash. */
  private pins = new Map<number, string>();

  obj(v: unknown, key: string, allowed: readonly string[]): Obj | undefined {
    if (!isObj(v)) {
      this.problems.push(`${key}: must be an object`);
      return undefined;
    }
    for (const k of Object.keys(v)) if (!allowed.includes(k)) this.problems.push(`${key}.${k}: unknown key`);
    return v;
  }

  pin(o: Obj, key: string): number {
    const v = o.pin;
    if (v === undefined) {
      this.problems.push(`${key}.pin: required`);
      return -1;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_GPIO_PIN) {
      this.problems.push(`${key}.pin: must be an integer from 0 to ${MAX_GPIO_PIN} (got ${JSON.stringify(v)})`);
      return -1;
    }
    const other = this.pins.get(v);
    if (other !== undefined) this.problems.push(`${key}.pin: GPIO ${v} is already used by ${other}`);
    else this.pins.set(v, key);
    return v;
  }

  level(o: Obj, field: string, key: string, fallback: Level): Level {
    const v = o[field];
    if (v === undefined) return fallback;
    if (v !== 0 && v !== 1) {
      this.problems.push(`${key}.${field}: must be 0 or 1 (got ${JSON.stringify(v)})`);
      return fallback;
    }
    return v;
  }

  ms(o: Obj, field: string, key: string, fallback: number): number {
    const v = o[field];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_DEBOUNCE_MS) {
      this.problems.push(`${key}.${field}: must be a number of ms from 0 to ${MAX_DEBOUNCE_MS} (got ${JSON.stringify(v)})`);
      return fallback;
    }
    return v;
  }
}

function read(raw: unknown): { settings: GpioSettings; problems: string[] } {
  const r = new Reader();
  const settings: GpioSettings = { driver: 'none', loadShed: [] };
  if (raw === undefined || raw === null) return { settings, problems: [] };
  const g = r.obj(raw, 'gpio', ['driver', 'sim', ...Object.keys(ROLE_KEYS)]);
  if (!g) return { settings, problems: r.problems };
  // the simulated site may keep its own settings under gpio.sim; they are not wiring
  if (g.driver === undefined) r.problems.push('gpio.driver: required');
  else if (g.driver !== 'onoff' && g.driver !== 'sim' && g.driver !== 'none')
    r.problems.push(`gpio.driver: must be one of "onoff", "sim", "none" (got ${JSON.stringify(g.driver)})`);
  else settings.driver = g.driver;

  if (g.gridSense !== undefined) {
    const o = r.obj(g.gridSense, 'gpio.gridSense', ROLE_KEYS.gridSense);
    if (o)
      settings.gridSense = {
        pin: r.pin(o, 'gpio.gridSense'),
        activeLevel: r.level(o, 'activeLevel', 'gpio.gridSense', GPIO_DEFAULTS.gridSenseActiveLevel),
        debounceMs: r.ms(o, 'debounceMs', 'gpio.gridSense', GPIO_DEFAULTS.gridSenseDebounceMs),
      };
  }
  if (g.contactor !== undefined) {
    const o = r.obj(g.contactor, 'gpio.contactor', ROLE_KEYS.contactor);
    if (o)
      settings.contactor = {
        pin: r.pin(o, 'gpio.contactor'),
        closedLevel: r.level(o, 'closedLevel', 'gpio.contactor', GPIO_DEFAULTS.contactorClosedLevel),
      };
  }
  if (g.contactorFeedback !== undefined) {
    const o = r.obj(g.contactorFeedback, 'gpio.contactorFeedback', ROLE_KEYS.contactorFeedback);
    if (o)
      settings.contactorFeedback = {
        pin: r.pin(o, 'gpio.contactorFeedback'),
        closedLevel: r.level(o, 'closedLevel', 'gpio.contactorFeedback', GPIO_DEFAULTS.feedbackClosedLevel),
        debounceMs: r.ms(o, 'debounceMs', 'gpio.contactorFeedback', GPIO_DEFAULTS.feedbackDebounceMs),
      };
  }
  if (g.loadShed !== undefined) {
    if (!Array.isArray(g.loadShed)) r.problems.push('gpio.loadShed: must be a list of {pin, onLevel, label}');
    else if (g.loadShed.length > 16) r.problems.push('gpio.loadShed: at most 16 tiers');
    else
      g.loadShed.forEach((item, i) => {
        const key = `gpio.loadShed.${i}`;
        const o = r.obj(item, key, ROLE_KEYS.loadShed);
        if (!o) return;
        let label = `tier ${i + 1}`;
        if (o.label !== undefined) {
          if (typeof o.label !== 'string' || o.label.trim() === '' || o.label.length > 64)
            r.problems.push(`${key}.label: must be a non-empty string of at most 64 characters`);
          else label = o.label;
        }
        settings.loadShed.push({ pin: r.pin(o, key), onLevel: r.level(o, 'onLevel', key, GPIO_DEFAULTS.loadShedOnLevel), label });
      });
  }
  if (g.estop !== undefined) {
    const o = r.obj(g.estop, 'gpio.estop', ROLE_KEYS.estop);
    if (o)
      settings.estop = {
        pin: r.pin(o, 'gpio.estop'),
        pressedLevel: r.level(o, 'pressedLevel', 'gpio.estop', GPIO_DEFAULTS.estopPressedLevel),
        debounceMs: r.ms(o, 'debounceMs', 'gpio.estop', GPIO_DEFAULTS.estopDebounceMs),
      };
  }
  if (g.statusLed !== undefined) {
    const o = r.obj(g.statusLed, 'gpio.statusLed', ROLE_KEYS.statusLed);
    if (o) settings.statusLed = { pin: r.pin(o, 'gpio.statusLed'), onLevel: r.level(o, 'onLevel', 'gpio.statusLed', GPIO_DEFAULTS.statusLedOnLevel) };
  }
  // the relay port is built around the contactor output; feedback and tiers alone have no port to live in
  if (!settings.contactor && settings.contactorFeedback) r.problems.push('gpio.contactorFeedback: needs gpio.contactor');
  if (!settings.contactor && settings.loadShed.length > 0) r.problems.push('gpio.loadShed: needs gpio.contactor');
  return { settings, problems: r.problems };
}

/** Every problem with a `gpio` section, as `"gpio.key: rule"`; empty when it is usable. */
export function gpioConfigProblems(raw: unknown): string[] {
  return read(raw).problems;
}

/** The `gpio` section with defaults filled in; throws GpioConfigError listing every problem. */
export function parseGpioConfig(raw: unknown): GpioSettings {
  const { settings, problems } = read(raw);
  if (problems.length) throw new GpioConfigError(problems);
  return settings;
}
