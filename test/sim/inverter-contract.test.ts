/** The inverter port contract against the in-process simulated inverter. */
import { SimCar } from '../../hal/sim/car.ts';
import { SimInverter } from '../../hal/sim/inverter.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { inverterContract } from '../contract/inverter-contract.ts';

inverterContract('SimInverter (in process)', async () => {
  const clock = new VirtualClock(Date.UTC(2026, 0, 15, 12));
  const car = new SimCar({ capacityWh: 60000, socPct: 70, maxChargeW: 11000, maxDischargeW: 11000 });
  const inverter = new SimInverter({ ratedW: 11000, efficiency: 0.95 }, car, clock);
  return {
    port: inverter,
    nowMs: () => clock.nowMs(),
    step: (dtS) => {
      clock.advance(dtS * 1000);
      inverter.step(dtS, { gridOnBus: true, islandLoadW: 0 });
    },
    // the in-process device cannot go away; its link reporting a fault is the closest thing
    vanish: async () => {
      inverter.faults.fault = { code: 'disconnected', message: 'simulated inverter link lost', sinceMs: clock.nowMs() };
    },
    dispose: async () => undefined,
  };
});
