/**
 * Chooses the drivers named in the config and builds the ports; simulated hardware comes from one
 * simulated home so the inverter, the car and the GPIO lines agree with each other.
 */
import type { Clock, Ports } from '../hal/ports.ts';
import { SimSite } from '../hal/sim/site.ts';
import type { Config } from './config/types.ts';

export interface Hardware {
  ports: Ports;
  /** The simulated home, when any driver is simulated. */
  site?: SimSite;
  /** Stop simulators and servers started for the ports. */
  close(): Promise<void>;
  /** One line per simulated piece, for the start-up banner. */
  describe: string[];
}

export function needsSimulation(c: Config): boolean {
  return c.inverter.driver === 'sim' || c.vehicleLink.driver === 'sim' || c.gpio.driver === 'sim' || c.simulation?.serve === true;
}

export function simulatedSite(c: Config, clock: Clock): SimSite {
  const s = c.simulation ?? {};
  return new SimSite({
    clock,
    vehicle: {
      capacityWh: s.vehicle?.capacityWh ?? 60000,
      socPct: s.vehicle?.socPct ?? 70,
      maxChargeW: s.vehicle?.maxChargeW ?? 11000,
      maxDischargeW: s.vehicle?.maxDischargeW ?? 11000,
    },
    inverter: { ratedW: s.inverter?.ratedW ?? 11000, efficiency: s.inverter?.efficiency ?? 0.95 },
    houseLoadW: s.houseLoadW ?? 600,
    sheddableLoadsW: s.sheddableLoadsW ?? [],
  });
}

export async function buildHardware(c: Config, clock: Clock, log: (msg: string) => void): Promise<Hardware> {
  const site = needsSimulation(c) ? simulatedSite(c, clock) : undefined;
  const closers: (() => Promise<void> | void)[] = [];
  const describe: string[] = [];
  const simPorts = site?.ports();
  if (site) {
    site.startPhysics(250);
    closers.push(() => site.stopPhysics());
  }

  let inverter: Ports['inverter'];
  switch (c.inverter.driver) {
    case 'sim':
      inverter = simPorts!.inverter;
      describe.push(`inverter: simulated ${site!.inverter.ratedW} W, in process`);
      break;
    default:
      throw new Error(`inverter.driver "${c.inverter.driver}" is not available in this build`);
  }

  let vehicle: Ports['vehicle'];
  switch (c.vehicleLink.driver) {
    case 'sim':
      vehicle = simPorts!.vehicle;
      describe.push(`vehicle: simulated car ${site!.car.capacityWh} Wh at ${site!.car.socPct} %, in process`);
      break;
    default:
      throw new Error(`vehicleLink.driver "${c.vehicleLink.driver}" is not available in this build`);
  }

  let gpio: Pick<Ports, 'gridSense' | 'relays' | 'estop'> = {};
  switch (c.gpio.driver) {
    case 'sim':
      gpio = { gridSense: simPorts!.gridSense, relays: simPorts!.relays, estop: simPorts!.estop };
      describe.push(`gpio: simulated lines (${site!.sheddableLoadsW.length} load-shed tiers)`);
      break;
    case 'none':
      describe.push('gpio: none (no grid sense, contactor or load shedding: backup disabled)');
      break;
    default:
      throw new Error(`gpio.driver "${c.gpio.driver}" is not available in this build`);
  }

  void log;
  return {
    ports: { clock, inverter, vehicle, ...gpio, siteMeter: simPorts?.siteMeter },
    site,
    describe,
    close: async () => {
      for (const fn of closers.reverse()) await fn();
    },
  };
}
