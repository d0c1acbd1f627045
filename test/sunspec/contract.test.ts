/** The inverter port contract against the SunSpec driver talking to the simulated SunSpec server over TCP. */
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { inverterContract } from '../contract/inverter-contract.ts';
import { GRID_ON, rig } from './harness.ts';

inverterContract('SunSpec driver over Modbus TCP to the simulated server', async () => {
  const clock = new VirtualClock(Date.UTC(2026, 0, 15, 12));
  const r = await rig({ clock });
  return {
    port: r.driver,
    nowMs: () => clock.nowMs(),
    step: (dtS) => {
      clock.advance(dtS * 1000);
      r.inverter.step(dtS, GRID_ON);
    },
    vanish: () => r.server.close(),
    dispose: () => r.dispose(),
  };
});
