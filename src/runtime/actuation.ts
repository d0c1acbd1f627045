/** Applying a plan to the ports in the order invariant 5 demands. */
import type { Ports } from '../../hal/ports.ts';
import type { Config } from '../config/types.ts';
import type { Plan } from '../control/types.ts';
import { safely } from './port-calls.ts';

export class Actuator {
  private lastForwardedLimitW?: number;
  private commandedSetpointW?: number;
  private commandedGridForming?: boolean;

  constructor(private readonly ports: Ports) {}

  /**
   * Apply a plan in the order invariant 5 demands: leaving the grid, power to zero before the contactor
   * opens and grid-forming only after; rejoining, grid-forming off before the contactor closes.
   */
  async apply(plan: Plan, config: Config): Promise<void> {
    const relays = this.ports.relays;
    const contactorNow = relays?.state().contactorCommandClosed ?? true;
    const setpoint = this.setpointChange(plan);
    const forming = this.gridFormingChange(plan);
    const contactor = relays !== undefined && contactorNow !== plan.contactorClosed;
    // most ticks change nothing: no awaits at all then
    if (setpoint || forming || contactor) {
      if (contactor && !plan.contactorClosed) {
        if (setpoint) await this.applySetpoint(plan);
        await safely(() => relays!.setContactor(false));
        if (forming) await this.applyGridForming(plan);
      } else if (contactor && plan.contactorClosed) {
        if (forming) await this.applyGridForming(plan);
        if (setpoint) await this.applySetpoint(plan);
        await safely(() => relays!.setContactor(true));
      } else if (plan.gridForming) {
        if (setpoint) await this.applySetpoint(plan);
        if (forming) await this.applyGridForming(plan);
      } else {
        if (forming) await this.applyGridForming(plan);
        if (setpoint) await this.applySetpoint(plan);
      }
    }
    if (relays) {
      const tiers = relays.state().loadTiersOn;
      for (let i = 0; i < plan.loadTiersOn.length && i < tiers.length; i++)
        if (tiers[i] !== plan.loadTiersOn[i]) await safely(() => relays.setLoadTier(i, plan.loadTiersOn[i]));
    }
    if (config.vehicleLink.forwardLimit && plan.setpointW !== this.lastForwardedLimitW) {
      this.lastForwardedLimitW = plan.setpointW;
      await safely(() => this.ports.vehicle.setPowerLimitW(plan.setpointW));
    }
  }

  /** Unchanged setpoints are not re-sent: the driver keeps the device watchdog fed itself (port contract). */
  private setpointChange(plan: Plan): boolean {
    return plan.setpointW !== this.commandedSetpointW || this.ports.inverter.state().fault !== undefined;
  }

  private gridFormingChange(plan: Plan): boolean {
    return this.commandedGridForming !== plan.gridForming || this.ports.inverter.state().reading?.gridForming !== plan.gridForming;
  }

  private async applySetpoint(plan: Plan): Promise<void> {
    await safely(() => this.ports.inverter.setPowerW(plan.setpointW));
    this.commandedSetpointW = plan.setpointW;
  }

  private async applyGridForming(plan: Plan): Promise<void> {
    await safely(() => this.ports.inverter.setGridForming(plan.gridForming));
    this.commandedGridForming = plan.gridForming;
  }
}
