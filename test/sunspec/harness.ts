/**
 * A simulated SunSpec inverter on a free loopback port with the real driver pointed at it.
 */
import { readFileSync } from 'node:fs';
import type { Clock } from '../../hal/ports.ts';
import { SimCar } from '../../hal/sim/car.ts';
import { SimInverter } from '../../hal/sim/inverter.ts';
import { parseDeviceMap, startSimSunspecServer, type SimSunspecServer, type SunspecDeviceMap } from '../../hal/sim/sunspec-server.ts';
import { SunspecInverter, type SunspecDriverOptions } from '../../hal/inverter/sunspec/driver.ts';
import { freePort } from '../helpers/broker.ts';

export const GRID_ON = { gridOnBus: true, islandLoadW: 0 };

export function loadDeviceMap(name: string): SunspecDeviceMap {
  return parseDeviceMap(JSON.parse(readFileSync(new URL(`../fixtures/sunspec/${name}.json`, import.meta.url), 'utf8')));
}

export interface Rig {
  car: SimCar;
  inverter: SimInverter;
  server: SimSunspecServer;
  driver: SunspecInverter;
  port: number;
  logs: string[];
  /** Stop the server and start a fresh one (a device reboot) on the same port. */
  restartServer(): Promise<void>;
  dispose(): Promise<void>;
}

export async function rig(o: {
  clock: Clock;
  deviceMap?: SunspecDeviceMap;
  driver?: Partial<Omit<SunspecDriverOptions, 'link' | 'clock'>>;
  unitId?: number;
  ratedW?: number;
}): Promise<Rig> {
  const car = new SimCar({ capacityWh: 60000, socPct: 70, maxChargeW: 11000, maxDischargeW: 11000 });
  const inverter = new SimInverter({ ratedW: o.ratedW ?? 11000, efficiency: 0.95 }, car, o.clock);
  const port = await freePort();
  const start = () => startSimSunspecServer({ port, host: '127.0.0.1', inverter, car, clock: o.clock, deviceMap: o.deviceMap });
  const logs: string[] = [];
  const r: Rig = {
    car,
    inverter,
    server: await start(),
    port,
    logs,
    driver: new SunspecInverter({
      link: { kind: 'tcp', host: '127.0.0.1', port, unitId: o.unitId ?? 1 },
      timeoutMs: 300,
      retries: 1,
      reversionS: 10,
      efficiency: 0.95,
      backoffMinMs: 0,
      backoffMaxMs: 0,
      ...o.driver,
      clock: o.clock,
      log: (m) => logs.push(m),
    }),
    async restartServer() {
      await r.server.close();
      r.server = await start();
    },
    async dispose() {
      await r.driver.close();
      await r.server.close();
    },
  };
  return r;
}
