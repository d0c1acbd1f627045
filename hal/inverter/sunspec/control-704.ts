/**
 * Active power through SunSpec model 704 (DER AC Controls): WSet in watts, with the reversion timeout
 * (WSetRvrtTms) as a device-side watchdog that falls back to WSetRvrt = 0 W when the commands stop.
 */
import type { DecodedPoints } from './codec.ts';
import { heldValue, num, REPRESENTATION_TOLERANCE, type ControlIo, type ModelAt, type PowerControl } from './model-io.ts';

/** The 704 points a tick reads (with WSet_SF). */
export const TICK_POINTS_704 = ['WSetEna', 'WSetMod', 'WSet', 'WSetRvrt', 'WSetEnaRvrt', 'WSetRvrtTms', 'WSetRvrtRem'] as const;
/** 704 WSetEna / WSetEnaRvrt ENABLED, WSetMod WATTS. */
const ENABLED = 1;
const MODE_WATTS = 1;

/** 704 WSet for a port command: WSet is negative for charging (704 WSet note), the port's positive is charging. */
function toWSet(powerW: number): number {
  return powerW === 0 ? 0 : -powerW;
}

export class Control704 implements PowerControl {
  readonly model = 704 as const;
  readonly tickPoints = TICK_POINTS_704;
  private last?: DecodedPoints;

  constructor(private readonly m: ModelAt, private readonly io: ControlIo) {}

  /**
   * Arm the device-side watchdog, then enable the setpoint: WSetRvrt = 0 W, WSetRvrtTms, WSetEnaRvrt,
   * then WSetMod = WATTS with WSet, then WSetEna. A command the device cannot hold is not written (0 W is).
   */
  async setup(commandW: number): Promise<void> {
    this.last = await this.io.read(this.m, TICK_POINTS_704);
    const w = this.unrepresentable(commandW) ? 0 : commandW;
    await this.io.write(this.m, [['WSetRvrt', 0]], this.last);
    await this.io.write(this.m, [['WSetRvrtTms', this.io.reversionS]], this.last);
    await this.io.write(this.m, [['WSetEnaRvrt', ENABLED]], this.last);
    await this.io.write(this.m, [['WSetMod', MODE_WATTS], ['WSet', toWSet(w)]], this.last);
    await this.io.write(this.m, [['WSetEna', ENABLED]], this.last);
  }

  async write(commandW: number): Promise<void> {
    // enable and mode ride along so a device that cleared them on reversion takes the command again
    await this.io.write(this.m, [['WSetEna', ENABLED], ['WSetMod', MODE_WATTS], ['WSet', toWSet(commandW)]], this.last);
  }

  observe(d: DecodedPoints): void {
    this.last = d;
  }

  setpointInForce(): number | undefined {
    const d = this.last;
    if (!d || d.raws.WSetEna !== ENABLED) return undefined;
    const w = num(d.values.WSet);
    return w === undefined ? undefined : w === 0 ? 0 : -w;
  }

  setupLost(): string | undefined {
    const r = this.last?.raws;
    if (!r) return undefined;
    // a point the device does not implement reads as undefined: it cannot tell us anything either way
    if (r.WSetEnaRvrt !== undefined && r.WSetEnaRvrt !== ENABLED) return '704 WSetEnaRvrt is no longer enabled';
    if (r.WSetRvrtTms !== undefined && r.WSetRvrtTms !== this.io.reversionS) return `704 WSetRvrtTms is ${String(r.WSetRvrtTms)} s, not ${this.io.reversionS} s`;
    if (r.WSetMod !== undefined && r.WSetMod !== MODE_WATTS) return '704 WSetMod is no longer WATTS';
    if (r.WSetEna !== undefined && r.WSetEna !== ENABLED) return '704 WSetEna is no longer enabled';
    return undefined;
  }

  unrepresentable(commandW: number): string | undefined {
    if (commandW === 0) return undefined;
    const lp = this.m.layout.byName.get('WSet')!;
    const sf = num(this.last?.raws.WSet_SF);
    if (sf === undefined) return undefined; // unknown until read; the write itself then refuses an unscalable value
    const h = heldValue(this.m, lp, toWSet(commandW), sf);
    return 'why' in h ? `setpoint ${commandW} W: ${h.why} (tolerance max(${REPRESENTATION_TOLERANCE.minW} W, ${REPRESENTATION_TOLERANCE.fraction * 100} %))` : undefined;
  }
}
