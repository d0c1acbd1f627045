/**
 * The inverter port contract against the CAN BMS driver on the in-memory bus, playing the battery to a
 * simulated hybrid inverter. The power comes from a DC meter on the stage (the harness's car facts); with the
 * SMA profile from the inverter's own 0x305 once it has sent one.
 */
import { inverterContract } from '../contract/inverter-contract.ts';
import { canRig } from './harness.ts';

for (const profile of ['pylontech-1.2', 'pylontech-1.3', 'sma']) {
  inverterContract(`CAN BMS driver (${profile}) on the in-memory bus`, async () => {
    const r = await canRig({ profile });
    return {
      port: r.driver,
      nowMs: () => r.clock.nowMs(),
      step: (dtS) => r.run(dtS),
      // the interface goes away under the driver (ip link set can0 down, a USB adapter pulled)
      vanish: async () => r.bus.down(),
      dispose: () => r.dispose(),
    };
  });
}
