/**
 * Applying a plan to the ports (invariant 5's order, and issue 14 point 3: opening the contactor never
 * waits on another device).
 *
 * `apply()` is synchronous: it issues the commands that may go at once before it returns, and runs the
 * ordered steps (rejoining: grid-forming off answered, then the setpoint, then the contactor) as a chain
 * that a newer plan cancels. Every call goes through a {@link CommandChannel}, so a device that hangs
 * holds at most its own command, never the contactor, the loop or the next decision.
 */
import type { Ports } from '../../hal/ports.ts';
import type { Config } from '../config/types.ts';
import type { Plan } from '../control/types.ts';
import { CommandChannel, type BoundedCaller } from './port-calls.ts';

export class Actuator {
  readonly setpoint: CommandChannel<number>;
  readonly forming: CommandChannel<boolean>;
  readonly contactor: CommandChannel<boolean>;
  readonly limit: CommandChannel<number>;
  private readonly tiers: CommandChannel<boolean>[] = [];
  /** Bumped by every plan: an ordered chain of an older plan stops at its next step. */
  private generation = 0;

  constructor(
    private readonly ports: Ports,
    private readonly caller: BoundedCaller,
    /** Whether a port is open (calls to one that is not are not made). */
    private readonly isOpen: (kind: string) => boolean,
  ) {
    const inv = ports.inverter;
    // zero power and grid-forming off make the device safer: they never queue behind an older command
    this.setpoint = new CommandChannel(caller, 'inverter', 'setPowerW', (w) => inv.setPowerW(w), (w) => w === 0);
    this.forming = new CommandChannel(caller, 'inverter', 'setGridForming', (on) => inv.setGridForming(on), (on) => !on);
    this.contactor = new CommandChannel(caller, 'relays', 'setContactor', (closed) => ports.relays!.setContactor(closed), (closed) => !closed);
    this.limit = new CommandChannel(caller, 'vehicle', 'setPowerLimitW', (w) => ports.vehicle.setPowerLimitW(w), (w) => w === 0);
  }

  private tier(i: number): CommandChannel<boolean> {
    for (let k = this.tiers.length; k <= i; k++)
      this.tiers.push(new CommandChannel(this.caller, 'relays', 'setLoadTier', (on) => this.ports.relays!.setLoadTier(k, on), (on) => !on));
    return this.tiers[i];
  }

  /** What the contactor was last commanded to: the newest request, else what the relay port says. */
  contactorCommanded(): boolean {
    return this.contactor.requested ?? this.ports.relays?.state().contactorCommandClosed ?? true;
  }

  /** The port was (re)opened: what was commanded before is unknown now. */
  forget(kind: string): void {
    if (kind === 'inverter') {
      this.setpoint.reset();
      this.forming.reset();
    } else if (kind === 'relays') {
      this.contactor.reset();
      for (const t of this.tiers) t.reset();
    } else if (kind === 'vehicle') this.limit.reset();
  }

  /** Stop every ordered chain still running (stop(), or a newer plan). */
  halt(): void {
    this.generation++;
  }

  apply(plan: Plan, config: Config): void {
    const gen = ++this.generation;
    const current = () => gen === this.generation;
    const inverterOpen = this.isOpen('inverter');
    const relays = this.ports.relays && this.isOpen('relays') ? this.ports.relays : undefined;
    const setpoint = inverterOpen && this.setpointChange(plan);
    const forming = inverterOpen && this.gridFormingChange(plan);
    const contactor = relays !== undefined && this.contactorChange(plan);

    if (contactor && !plan.contactorClosed) {
      // leaving the grid: the contactor opens now, whatever the inverter does; the zero setpoint goes
      // out at the same time (invariant 5: opening the contactor never waits on another device)
      void this.contactor.send(false);
      if (setpoint) void this.setpoint.send(plan.setpointW);
      if (forming && !plan.gridForming) void this.forming.send(false);
      else if (forming) {
        // grid-forming only once the open command has been written (the core also waits for the feedback)
        void this.afterOpen().then((ok) => {
          if (ok && current()) void this.forming.send(true);
        });
      }
    } else if (contactor && plan.contactorClosed) {
      // rejoining: grid-forming off answered, the setpoint answered, then the contactor; a newer plan or
      // a step that does not answer stops the chain (the house waits rather than closing blind)
      void (async () => {
        if (forming && !(await this.forming.send(plan.gridForming))) return;
        if (!current()) return;
        if (setpoint && !(await this.setpoint.send(plan.setpointW))) return;
        if (current()) void this.contactor.send(true);
      })();
    } else if (plan.gridForming) {
      // islanded: the setpoint before grid-forming, and grid-forming only once the open command answered
      const sent = setpoint ? this.setpoint.send(plan.setpointW) : Promise.resolve(true);
      if (forming) {
        void Promise.all([sent, this.afterOpen()]).then(([, open]) => {
          if (open && current()) void this.forming.send(true);
        });
      }
    } else {
      // grid-forming off first; a zero setpoint needs no order, any other waits for the forming answer
      if (forming) void this.forming.send(false);
      if (setpoint && (plan.setpointW === 0 || !forming)) void this.setpoint.send(plan.setpointW);
      else if (setpoint) {
        void this.forming.send(false).then((ok) => {
          if (ok && current()) void this.setpoint.send(plan.setpointW);
        });
      }
    }

    if (relays) {
      const tiers = relays.state().loadTiersOn;
      for (let i = 0; i < plan.loadTiersOn.length && i < tiers.length; i++) {
        const ch = this.tier(i);
        const want = plan.loadTiersOn[i];
        if (want !== ch.requested || (ch.idle && (ch.lastFailed || tiers[i] !== want))) void ch.send(want);
      }
    }
    if (config.vehicleLink.forwardLimit && this.isOpen('vehicle') && plan.setpointW !== this.limit.requested) void this.limit.send(plan.setpointW);
  }

  /** Resolves true once the contactor has been commanded open and that command answered. */
  private async afterOpen(): Promise<boolean> {
    if (!this.ports.relays) return true;
    if (this.contactor.requested === false && this.contactor.idle) return this.contactor.acknowledged === false || this.ports.relays.state().contactorCommandClosed === false;
    return this.contactor.send(false);
  }

  /** Unchanged setpoints are not re-sent (the driver keeps the device watchdog fed itself, port contract), unless the port is in fault. */
  private setpointChange(plan: Plan): boolean {
    if (plan.setpointW !== this.setpoint.requested) return true;
    const faulted = this.ports.inverter.state().fault !== undefined || this.caller.fault('inverter') !== undefined;
    return this.setpoint.idle && (this.setpoint.lastFailed || faulted);
  }

  private gridFormingChange(plan: Plan): boolean {
    if (plan.gridForming !== this.forming.requested) return true;
    return this.forming.idle && (this.forming.lastFailed || this.ports.inverter.state().reading?.gridForming !== plan.gridForming);
  }

  private contactorChange(plan: Plan): boolean {
    if (plan.contactorClosed !== this.contactorCommanded()) return true;
    return this.contactor.idle && (this.contactor.lastFailed || this.ports.relays!.state().contactorCommandClosed !== plan.contactorClosed);
  }
}
