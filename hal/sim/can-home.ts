/**
 * The simulated home's inverter as a CAN battery port (`inverter.driver: "can-bms"` with
 * `inverter.can.interface: "sim"`, and CAN scenarios of `wallbox simulate`): an in-memory CAN bus with a
 * simulated hybrid inverter on it, and a DC meter on the stage for the driver's measurement.
 */
import type { Clock, InverterPort } from '../ports.ts';
import type { CarFactsSource } from '../inverter/can/car-facts.ts';
import type { CanChannel } from '../inverter/can/channel.ts';
import { createCanInverter, parseCanConfig, type CanConfig } from '../inverter/can/index.ts';
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

/**
 * A `wallbox simulate` scenario on the CAN path (scenario `inverter.can`, the keys of `inverter.can`): the
 * simulated hybrid inverter on the home's power stage, and a CAN driver per process life, on that life's
 * clock (a killed process's frame timers die with it, as on the board).
 */
export async function startScenarioCan(
  site: SimSite,
  clock: Clock,
  can: Record<string, unknown>,
  o: { efficiency: number; socMaxAgeS: number; /** The config's own inverter.can (the built-in values), under the scenario's. */ base: Record<string, unknown> },
): Promise<{ home: SimCanHome; driverFor: (clock: Clock) => InverterPort; stop(): Promise<void> }> {
  const basePack = (o.base.pack ?? {}) as Record<string, unknown>;
  const pack = can.pack === undefined ? basePack : typeof can.pack === 'object' && can.pack !== null && !Array.isArray(can.pack) ? { ...basePack, ...can.pack } : can.pack;
  const cfg = parseCanConfig({ ...o.base, ...can, pack, interface: 'sim' });
  const home = await startSimCanHome(site, clock, cfg, { efficiency: o.efficiency });
  return {
    home,
    driverFor: (lifeClock) => createCanInverter(cfg, { clock: lifeClock, car: home.facts, efficiency: o.efficiency, socMaxAgeMs: o.socMaxAgeS * 1000, channel: home.channel }),
    stop: () => home.stop(),
  };
}
