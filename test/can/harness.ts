/** A CAN BMS driver and a simulated hybrid inverter on one in-memory bus, under the virtual clock. */
import { CanBmsInverter, type CanBmsOptions } from '../../hal/inverter/can/driver.ts';
import { InMemoryCanBus } from '../../hal/inverter/can/memory-bus.ts';
import { resolveProfile, type ProfileOverrides } from '../../hal/inverter/can/profiles.ts';
import type { PackConfig } from '../../hal/inverter/can/bms-values.ts';
import type { CarFactsSource } from '../../hal/inverter/can/car-facts.ts';
import type { CanFrame } from '../../hal/inverter/can/channel.ts';
import { SimCar } from '../../hal/sim/car.ts';
import { SimCanInverter, type SimCanInverterOptions } from '../../hal/sim/can-inverter.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { defaultConfigJson, getKey } from '../../src/config/load.ts';

/** `inverter.can` as a config file giving `over` would have it: the built-in section (config/default.json) under it. */
export function canSection(over: Record<string, unknown> = {}): Record<string, unknown> {
  const base = getKey(defaultConfigJson(), 'inverter.can') as Record<string, unknown>;
  return { ...base, ...over, pack: { ...(base.pack as object), ...((over.pack as object | undefined) ?? {}) } };
}

export const PACK: PackConfig = { voltageV: 51.2, chargeVoltageV: 55.2, dischargeVoltageV: 46.0, maxChargeA: 200, maxDischargeA: 200, sohPct: 98, temperatureC: 25, capacityAh: 1000 };

export interface CanRig {
  clock: VirtualClock;
  bus: InMemoryCanBus;
  car: SimCar;
  sim: SimCanInverter;
  driver: CanBmsInverter;
  /** Every frame on the bus with its sender, in order. */
  frames: { frame: CanFrame; from: string }[];
  logs: string[];
  /** Advance the clock and the power stage by dtS, in steps of at most 100 ms. */
  run(dtS: number): void;
  /** A DC meter on the stage (what the driver's car facts read in these tests). */
  facts: CarFactsSource;
  makeDriver(over?: Partial<CanBmsOptions>): CanBmsInverter;
  dispose(): Promise<void>;
}

export interface RigOptions {
  profile?: string;
  overrides?: ProfileOverrides;
  socPct?: number;
  driver?: Partial<CanBmsOptions>;
  sim?: Partial<SimCanInverterOptions>;
  /** The car's SoC facts stop (the vehicle link went quiet). */
  startMs?: number;
}

export async function canRig(o: RigOptions = {}): Promise<CanRig> {
  const clock = new VirtualClock(o.startMs ?? Date.UTC(2026, 0, 15, 12));
  const bus = new InMemoryCanBus(clock, 'vcan-test');
  const frames: CanRig['frames'] = [];
  bus.tap((frame, from) => frames.push({ frame, from }));
  const profile = resolveProfile(o.profile ?? 'pylontech-1.3', o.overrides);
  const car = new SimCar({ capacityWh: 60000, socPct: o.socPct ?? 70, maxChargeW: 11000, maxDischargeW: 11000 });
  const sim = new SimCanInverter({ profile, ratedW: 11000, efficiency: 0.95, busVoltageV: PACK.voltageV, ...o.sim }, car, bus.channel('inverter'), clock);
  await sim.start();
  const facts: CarFactsSource = () => ({ socPct: car.socPct, socAtMs: clock.nowMs(), dcPowerW: sim.dcPowerW, powerAtMs: sim.lastStepAtMs, powerSource: 'meter' });
  const logs: string[] = [];
  const makeDriver = (over: Partial<CanBmsOptions> = {}) =>
    new CanBmsInverter({
      channel: () => bus.channel('bms'),
      profile,
      pack: PACK,
      ratedW: 11000,
      efficiency: 0.95,
      keepaliveTimeoutMs: 10_000,
      socMaxAgeMs: 30_000,
      car: facts,
      clock,
      log: (m) => logs.push(m),
      ...o.driver,
      ...over,
    });
  const driver = makeDriver();
  return {
    clock,
    bus,
    car,
    sim,
    driver,
    frames,
    logs,
    facts,
    makeDriver,
    run(dtS: number) {
      let left = Math.round(dtS * 1000);
      while (left > 0) {
        const ms = Math.min(100, left);
        clock.advance(ms);
        sim.step(ms / 1000);
        left -= ms;
      }
    },
    async dispose() {
      await driver.close();
      await sim.stop();
    },
  };
}

/** The frames with this id (sent by `from`, when given). */
export function framesWithId(rig: Pick<CanRig, 'frames'>, id: number, from?: string): CanFrame[] {
  return rig.frames.filter((f) => f.frame.id === id && (from === undefined || f.from === from)).map((f) => f.frame);
}
