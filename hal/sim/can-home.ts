/**
 * The simulated home's inverter as a CAN battery port (`inverter.driver: "can-bms"` with
 * `inverter.can.interface: "sim"`, and CAN scenarios of `wallbox simulate`): an in-memory CAN bus with a
 * simulated hybrid inverter on it, and a DC meter on the stage for the driver's measurement.
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

/**
 * The CAN front end drives the home's own simulated power stage (site.inverter): the site's physics, grid,
 * energy counters and safety monitor apply as they do for the other inverter paths.
 */
export async function startSimCanHome(site: SimSite, clock: Clock, cfg: CanConfig, o: { efficiency: number }): Promise<SimCanHome> {
  const bus = new InMemoryCanBus(clock, 'sim-can');
  const inverter = new SimCanInverter(
    { profile: cfg.profile, ratedW: cfg.ratedW, efficiency: o.efficiency, busVoltageV: cfg.pack.voltageV, stage: site.inverter },
    site.car,
    bus.channel('inverter'),
    clock,
  );
  await inverter.start();
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
