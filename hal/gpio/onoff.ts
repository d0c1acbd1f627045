/**
 * The board's GPIO lines through `onoff` (Linux sysfs GPIO), and the ports built on them.
 *
 * Polarity is ours, not the kernel's: every line is opened with `activeLow: false`, so a value read or
 * written here is the electrical level on the pin, and the wiring's `activeLevel`/`closedLevel`/... say what
 * it means. A line left `active_low` by another program therefore cannot silently invert a contactor.
 */
import { createRequire } from 'node:module';
import type { Clock } from '../ports.ts';
import { parseGpioConfig } from './config.ts';
import type { DigitalLine, Level } from './lines.ts';
import { buildGpioPorts, type GpioPorts, type LineFactory, type LineRequest, type LineRole } from './wiring.ts';

export type GpioDirection = 'in' | 'out' | 'high' | 'low';
export type GpioEdge = 'none' | 'rising' | 'falling' | 'both';
export type GpioValueCallback = (err: Error | null | undefined, value: 0 | 1) => void;

export interface GpioOpenOptions {
  debounceTimeout?: number;
  activeLow?: boolean;
  reconfigureDirection?: boolean;
}

/** The part of onoff's `Gpio` this driver uses; a stand-in with the same shape runs the contract suites. */
export interface GpioLike {
  readSync(): 0 | 1;
  write(value: 0 | 1): Promise<void>;
  watch(callback: GpioValueCallback): void;
  unwatch(callback?: GpioValueCallback): void;
  unexport(): void;
}

/** Claims one line; onoff's `new Gpio(...)` by default. Throws like onoff does (ENOENT, EBUSY, EINVAL, EACCES...). */
export type GpioFactory = (pin: number, direction: GpioDirection, edge: GpioEdge, options: GpioOpenOptions) => GpioLike;

/** A line could not be claimed at start. Names the pin, its role and what to check. */
export class GpioOpenError extends Error {
  readonly pin: number;
  readonly role: LineRole;
  /** The system error code when there is one (`ENOENT`, `EBUSY`, `EINVAL`, `EACCES`, ...). */
  readonly code?: string;

  constructor(request: LineRequest, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException)?.code;
    const detail = (cause as Error)?.message ?? String(cause);
    super(`cannot open GPIO ${request.pin} for the ${request.label} (${request.direction === 'in' ? 'input' : 'output'}): ${detail}${hint(code)}`, { cause });
    this.name = 'GpioOpenError';
    this.pin = request.pin;
    this.role = request.role;
    this.code = code;
  }
}

function hint(code: string | undefined): string {
  switch (code) {
    case 'ENOENT':
      return ' — the sysfs GPIO file is missing: not a board with GPIO, a kernel without CONFIG_GPIO_SYSFS, or no such line';
    case 'EBUSY':
      return ' — the line is held by another driver or program (a device-tree overlay, another service); free it or pick another pin';
    case 'EINVAL':
      return ' — this board has no such line; gpio pins are the kernel\'s line numbers, not header pin numbers';
    case 'EACCES':
    case 'EPERM':
      return ' — permission denied: run the service as a user in the gpio group';
    default:
      return '';
  }
}

let onoffGpio: (new (pin: number, direction: GpioDirection, edge: GpioEdge, options: GpioOpenOptions) => GpioLike) | undefined;

/** onoff is loaded on first use only: its native epoll addon is not needed by simulated runs. */
export function loadOnoff(): new (pin: number, direction: GpioDirection, edge: GpioEdge, options: GpioOpenOptions) => GpioLike {
  if (!onoffGpio) {
    const require = createRequire(import.meta.url);
    onoffGpio = (require('onoff') as { Gpio: typeof onoffGpio }).Gpio;
  }
  return onoffGpio!;
}

export const onoffFactory: GpioFactory = (pin, direction, edge, options) => new (loadOnoff())(pin, direction, edge, options);

/** One board line through onoff (or a stand-in with onoff's API). */
export class OnoffLine implements DigitalLine {
  /** The last error onoff reported with an interrupt, for diagnostics. */
  lastWatchError?: Error;
  private released = false;
  private lastLevel?: Level;

  constructor(readonly name: string, private gpio: GpioLike) {}

  /**
   * Claim `request.pin`. Inputs watch both edges (onoff's bounce filter when `debounceMs` > 0); outputs are
   * set to `initialLevel` when freshly claimed and keep their level when already claimed as outputs, so a
   * restarted process does not flip a contactor it has not decided about yet.
   */
  static open(request: LineRequest, factory: GpioFactory = onoffFactory): OnoffLine {
    const options: GpioOpenOptions = { activeLow: false };
    let direction: GpioDirection = 'in';
    let edge: GpioEdge = 'none';
    if (request.direction === 'in') {
      edge = 'both';
      if (request.debounceMs && request.debounceMs > 0) options.debounceTimeout = request.debounceMs;
    } else {
      direction = request.initialLevel === 1 ? 'high' : 'low';
      options.reconfigureDirection = false;
    }
    let gpio: GpioLike;
    try {
      gpio = factory(request.pin, direction, edge, options);
    } catch (e) {
      throw new GpioOpenError(request, e);
    }
    return new OnoffLine(`${request.pin} (${request.label})`, gpio);
  }

  read(): Level {
    this.lastLevel = this.gpio.readSync() === 1 ? 1 : 0;
    return this.lastLevel;
  }

  async write(level: Level): Promise<void> {
    if (this.released) throw new Error('line already released');
    await this.gpio.write(level);
  }

  watch(listener: (level: Level) => void): () => void {
    const callback: GpioValueCallback = (err, value) => {
      if (err) this.lastWatchError = err;
      // an interrupt whose value could not be read still means "look again": pass the last level on so the
      // port above re-reads the line (and reports the read failure as a fault) without seeing a false edge
      const level: Level | undefined = value === 0 || value === 1 ? value : this.lastLevel;
      if (level === undefined) return;
      this.lastLevel = level;
      try {
        listener(level);
      } catch {
        // a throw here would surface inside onoff's poller as an uncaught exception
      }
    };
    this.gpio.watch(callback);
    return () => {
      try {
        this.gpio.unwatch(callback);
      } catch {
        // already released
      }
    };
  }

  close(): void {
    if (this.released) return;
    this.released = true;
    try {
      this.gpio.unexport();
    } catch {
      // releasing is best effort on the way out
    }
  }
}

export interface OpenGpioOptions {
  /** Replaces onoff's Gpio constructor (tests, other line back-ends with onoff's API). */
  gpioFactory?: GpioFactory;
  /** Lines for `driver: "sim"`: the simulated site supplies them. */
  simLineFor?: LineFactory;
}

/**
 * Build the GPIO ports from the `gpio` config section (see docs/gpio.md): grid sense, relays (contactor,
 * feedback, load-shed tiers), e-stop and status LED, each present only when wired. Throws GpioConfigError
 * for a bad section and GpioOpenError naming the pin and role for a line that cannot be claimed (after
 * releasing the lines already claimed). The ports come back unopened; open them like the other ports.
 */
export function openGpioPorts(config: unknown, clock: Clock, opts: OpenGpioOptions = {}): GpioPorts {
  const settings = parseGpioConfig(config);
  switch (settings.driver) {
    case 'none':
      return buildGpioPorts({ driver: 'none', loadShed: [] }, clock, () => {
        throw new Error('unreachable: no lines requested');
      });
    case 'sim': {
      const lineFor = opts.simLineFor;
      if (!lineFor) throw new Error('gpio.driver "sim": the simulated site supplies the lines (pass simLineFor)');
      return buildGpioPorts(settings, clock, lineFor);
    }
    case 'onoff': {
      const factory = opts.gpioFactory ?? onoffFactory;
      return buildGpioPorts(settings, clock, (request) => OnoffLine.open(request, factory));
    }
  }
}
