/**
 * The vehicle link contract, run against the in-process simulated link and against the EVerest link
 * talking to the simulated bridge through a real broker.
 */
import { vehicleContract } from '../contract/vehicle-contract.ts';
import { SimCar, SimVehicleLink } from '../../hal/sim/car.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { startSimEverestBridge, type SimEverestBridge } from '../../hal/sim/everest-bridge.ts';
import { EverestVehicleLink } from '../../hal/vehicle/everest.ts';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { T0_MS, waitFor } from './helpers.ts';

const newCar = () => new SimCar({ capacityWh: 60_000, socPct: 50, maxChargeW: 11_000, maxDischargeW: 11_000, minSocPct: 10, targetSocPct: 80 });

vehicleContract('SimVehicleLink', async () => {
  const clock = new VirtualClock(T0_MS);
  const car = newCar();
  const port = new SimVehicleLink(car, clock);
  return {
    port,
    car,
    settle: async () => {
      clock.advance(1000);
      await port.refresh();
    },
    cutLink: async () => {
      // the in-process link has no wire: its fault injection stands in for one that broke
      port.faults = { fault: { code: 'disconnected', message: 'simulated link cut', sinceMs: clock.nowMs() } };
    },
    dispose: () => port.close(),
  };
});

vehicleContract('EverestVehicleLink + simulated EVerest bridge', async () => {
  const clock = new VirtualClock(T0_MS);
  const car = newCar();
  // a broker per harness, so that cutting the link is stopping it
  const broker: TestBroker = await startBroker();
  let bridge: SimEverestBridge | undefined;
  const port = new EverestVehicleLink({ url: broker.url, evseId: 'evse_manager', clock, forwardLimit: true, reconnectMinMs: 50, reconnectMaxMs: 200 });
  const sent = () => (bridge ? Object.values(bridge.published).reduce((a, b) => a + b, 0) : 0);
  return {
    port,
    car,
    settle: async () => {
      bridge ??= await startSimEverestBridge({ url: broker.url, evseId: 'evse_manager', car, clock, periodMs: 1000 });
      clock.advance(1000);
      await waitFor(() => port.counters.messages >= sent(), 'a bridge period at the port');
    },
    cutLink: async () => {
      await broker.stop();
      await waitFor(() => port.state().fault?.code === 'disconnected', 'disconnected fault');
    },
    dispose: async () => {
      await bridge?.stop();
      await port.close();
      await broker.stop();
    },
  };
});
