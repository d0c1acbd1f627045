/**
 * The simulated home's inverter as a CAN battery port (`inverter.driver: "can-bms"` with
 * `inverter.can.interface: "sim"`): an in-memory CAN bus with a simulated hybrid inverter on it, driving the
 * home's simulated car, and a DC meter on the stage for the driver's measurement.
 */
import type { Clock } from '../ports.ts';
import type { CarFactsSource } from '../inverter/can/car-facts.ts';
import type { CanChannel } from '../inverter/can/channel.ts';
import type { CanConfig } from '../inverter/can/index.ts';
import { InMemoryCanBus } from '../inverter/can/memory-bus.ts';
import { SimCanInverter } from './can-inverter.ts';
import type { SimSite } from './site.ts';

export interface SimCanHome {
  bus: InMemoryCanBus;
  inverter: SimCanInverter;
  /** The driver's end of the bus. */
  channel: () => CanChannel;
  /** The car's SoC as the vehicle link would give it, and the power from the stage's DC meter. */
  facts: CarFactsSource;
  stop(): Promise<void>;
}

export async function startSimCanHome(site: SimSite, clock: Clock, cfg: CanConfig, o: { efficiency: number; physicsMs?: number }): Promise<SimCanHome> {
  const bus = new InMemoryCanBus(clock, 'sim-can');
  const inverter = new SimCanInverter({ profile: cfg.profile, ratedW: cfg.ratedW, efficiency: o.efficiency, busVoltageV: cfg.pack.voltageV }, site.car, bus.channel('inverter'), clock);
  await inverter.start();
  // the grid on the AC side: the grid up and the contactor closed (a grid-following stage has nothing to exchange with otherwise)
  inverter.startPhysics(o.physicsMs ?? 250, () => site.gridUp && site.contactorClosed());
  return {
    bus,
    inverter,
    channel: () => bus.channel('bms'),
    facts: () => ({
      socPct: site.car.connected ? site.car.socPct : undefined,
      socAtMs: site.car.connected ? clock.nowMs() : undefined,
      dcPowerW: inverter.dcPowerW,
      powerAtMs: inverter.lastStepAtMs,
      powerSource: 'meter',
    }),
    stop: () => inverter.stop(),
  };
}
