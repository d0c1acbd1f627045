/**
 * Chooses the drivers named in the config and builds the ports; simulated hardware comes from one
 * simulated home so the inverter, the car and the GPIO lines agree with each other.
 */
import type { Clock, Ports } from '../hal/ports.ts';
import { SimSite } from '../hal/sim/site.ts';
import { createSunspecInverter } from '../hal/inverter/sunspec/index.ts';
import { startSimSunspecServer } from '../hal/sim/sunspec-server.ts';
import { EverestVehicleLink, everestOptionsFromConfig } from '../hal/vehicle/everest.ts';
import { startSimEverestBridge } from '../hal/sim/everest-bridge.ts';
import { openGpioPorts } from '../hal/gpio/onoff.ts';
import type { Config } from './config/types.ts';

export interface Hardware {
  ports: Ports;
  /** The simulated home, when any driver is simulated. */
  site?: SimSite;
  /** Stop simulators and servers started for the ports. */
  close(): Promise<void>;
  /** One line per simulated piece, for the start-up banner. */
  describe: string[];
  /** The status LED, when one is wired. */
  statusLed?: { setStatus(status: 'ok' | 'backup' | 'fault'): void };
}

export function needsSimulation(c: Config): boolean {
  const sim = c.simulation ?? {};
  return c.inverter.driver === 'sim' || c.vehicleLink.driver === 'sim' || c.gpio.driver === 'sim' || sim.serveInverter === true || sim.serveBridge === true;
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
    gridSenseDebounceMs: (c.gpio.gridSense as { debounceMs?: number } | undefined)?.debounceMs ?? 10,
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
    case 'sunspec': {
      const modbus = (c.inverter.modbus ?? {}) as Record<string, unknown>;
      if (site && c.simulation?.serveInverter) {
        // the simulated inverter, served as a SunSpec device on loopback and read through the real driver
        const port = c.simulation.servePort ?? 15020;
        const server = await startSimSunspecServer({ port, host: '127.0.0.1', inverter: site.inverter, car: site.car, clock });
        closers.push(() => server.close());
        describe.push(`inverter: simulated ${site.inverter.ratedW} W served as SunSpec Modbus TCP on 127.0.0.1:${port}`);
      }
      inverter = createSunspecInverter(c.inverter, clock, (m) => log(m));
      describe.push(`inverter: SunSpec over ${typeof modbus.path === 'string' ? `Modbus RTU ${modbus.path}` : `Modbus TCP ${modbus.host}:${modbus.port ?? 502}`}`);
      break;
    }
    default:
      throw new Error(`inverter.driver "${c.inverter.driver}" is not available in this build`);
  }

  let vehicle: Ports['vehicle'];
  switch (c.vehicleLink.driver) {
    case 'sim':
      vehicle = simPorts!.vehicle;
      describe.push(`vehicle: simulated car ${site!.car.capacityWh} Wh at ${site!.car.socPct} %, in process`);
      break;
    case 'everest': {
      if (site && c.simulation?.serveBridge) {
        const bridge = await startSimEverestBridge({ url: c.vehicleLink.url, evseId: c.vehicleLink.evseId, car: site.car, clock });
        closers.push(() => bridge.stop());
        describe.push(`vehicle: simulated car published as an EVerest bridge on ${c.vehicleLink.url}`);
      }
      vehicle = new EverestVehicleLink(everestOptionsFromConfig(c.vehicleLink as Parameters<typeof everestOptionsFromConfig>[0], clock, (level, m) => log(`${level}: ${m}`)));
      describe.push(`vehicle: EVerest API on ${c.vehicleLink.url}, EVSE ${c.vehicleLink.evseId}`);
      break;
    }
    default:
      throw new Error(`vehicleLink.driver "${c.vehicleLink.driver}" is not available in this build`);
  }

  let gpio: Pick<Ports, 'gridSense' | 'relays' | 'estop'> = {};
  let statusLed: Hardware['statusLed'];
  switch (c.gpio.driver) {
    case 'sim':
      gpio = { gridSense: simPorts!.gridSense, relays: simPorts!.relays, estop: simPorts!.estop };
      describe.push(`gpio: simulated lines (${site!.sheddableLoadsW.length} load-shed tiers)`);
      break;
    case 'none':
      describe.push('gpio: none (no grid sense, contactor or load shedding: backup disabled)');
      break;
    case 'onoff': {
      const g = openGpioPorts(c.gpio, clock);
      gpio = { gridSense: g.gridSense, relays: g.relays, estop: g.estop };
      statusLed = g.statusLed;
      closers.push(() => g.close());
      describe.push('gpio: board lines through onoff');
      break;
    }
  }

  return {
    ports: { clock, inverter, vehicle, ...gpio, siteMeter: simPorts?.siteMeter },
    site,
    describe,
    statusLed,
    close: async () => {
      for (const fn of closers.reverse()) await fn();
    },
  };
}
