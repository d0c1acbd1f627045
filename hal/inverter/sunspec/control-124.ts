/**
 * Active power through SunSpec model 124 (Basic Storage Controls), for devices without 704: InWRte /
 * OutWRte as a percentage of WChaMax (124 names WDisChaMax, which it lacks), with InOutWRte_RvrtTms as
 * the device-side fallback timer. Vendors differ in how they sign InWRte/OutWRte (docs/sunspec.md).
 */
import type { DecodedPoints } from './codec.ts';
import { GarbageError, heldValue, num, REPRESENTATION_TOLERANCE, type ControlIo, type ModelAt, type PowerControl } from './model-io.ts';

/** The 124 points a tick reads (with their scale factors). */
export const TICK_POINTS_124 = ['WChaMax', 'StorCtl_Mod', 'ChaState', 'ChaSt', 'OutWRte', 'InWRte', 'InOutWRte_RvrtTms'] as const;
/** 124 StorCtl_Mod: bit 0 CHARGE and bit 1 DiSCHARGE limits in force. */
const STORCTL_BOTH = 0b11;

export class Control124 implements PowerControl {
  readonly model = 124 as const;
  readonly tickPoints = TICK_POINTS_124;
  private last?: DecodedPoints;

  constructor(private readonly m: ModelAt, private readonly io: ControlIo) {}

  async setup(commandW: number): Promise<void> {
    this.last = await this.io.read(this.m, TICK_POINTS_124);
    await this.io.write(this.m, [['StorCtl_Mod', STORCTL_BOTH]], this.last);
    await this.write(this.unrepresentable(commandW) ? 0 : commandW);
  }

  async write(commandW: number): Promise<void> {
    const refW = this.refW();
    const pct = Math.min(100, (Math.abs(commandW) / refW) * 100);
    const inPct = commandW > 0 ? pct : commandW < 0 ? -pct : 0;
    await this.io.write(
      this.m,
      [
        ['OutWRte', -inPct || 0],
        ['InWRte', inPct || 0],
        ['InOutWRte_WinTms', 0],
        ['InOutWRte_RvrtTms', this.io.reversionS],
      ],
      this.last,
    );
  }

  observe(d: DecodedPoints): void {
    this.last = d;
  }

  setpointInForce(): number | undefined {
    const d = this.last;
    if (!d) return undefined;
    const refW = num(d.values.WChaMax);
    const inPct = num(d.values.InWRte);
    const outPct = num(d.values.OutWRte);
    if (refW === undefined || inPct === undefined || outPct === undefined) return undefined;
    if (inPct > 0) return (inPct / 100) * refW;
    if (outPct > 0) return -(outPct / 100) * refW;
    return 0;
  }

  setupLost(): string | undefined {
    const r = this.last?.raws;
    if (!r) return undefined;
    if (r.StorCtl_Mod !== undefined && r.StorCtl_Mod !== STORCTL_BOTH) return `124 StorCtl_Mod is ${String(r.StorCtl_Mod)}, not CHARGE|DISCHARGE`;
    return undefined;
  }

  unrepresentable(commandW: number): string | undefined {
    if (commandW === 0) return undefined;
    const refW = num(this.last?.values.WChaMax);
    const sf = num(this.last?.raws.InOutWRte_SF);
    if (refW === undefined || refW <= 0 || sf === undefined) return undefined; // the write refuses it with the reason
    const lp = this.m.layout.byName.get('InWRte')!;
    const pct = Math.min(100, (Math.abs(commandW) / refW) * 100);
    const h = heldValue(this.m, lp, pct, sf);
    const tol = Math.max(REPRESENTATION_TOLERANCE.minW, REPRESENTATION_TOLERANCE.fraction * Math.abs(commandW));
    if ('why' in h) return `setpoint ${commandW} W (${pct} % of WChaMax ${refW} W): ${h.why}`;
    const heldW = (h.held / 100) * refW;
    if (Math.abs(heldW - Math.min(refW, Math.abs(commandW))) > tol) {
      return `setpoint ${commandW} W: 124 InWRte/OutWRte with InOutWRte_SF = ${sf} of WChaMax ${refW} W can hold ${heldW} W at the nearest`;
    }
    return undefined;
  }

  private refW(): number {
    const refW = num(this.last?.values.WChaMax);
    if (refW === undefined || refW <= 0) throw new GarbageError(`124 WChaMax (register ${this.m.address + 2}) is not implemented or not positive; cannot express a power command`);
    return refW;
  }
}
