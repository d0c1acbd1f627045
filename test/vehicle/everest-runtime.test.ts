/**
 * End to end over a real broker: the runtime with the EVerest link reading the simulated bridge, which
 * publishes the simulated site's car. A stalled feed gives zero power, an unplug curtails the dispatch,
 * and a car without SoC is discharged only with a configured capacity and a tracked SoC.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { startSimEverestBridge, type SimEverestBridge } from '../../hal/sim/everest-bridge.ts';
import { EverestVehicleLink } from '../../hal/vehicle/everest.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import type { DispatchResponse } from '../../src/control/types.ts';
import { T0_MS, waitFor } from './helpers.ts';

const EVSE = 'evse_manager';

describe('runtime + EVerest link + simulated bridge', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(async () => {
    await broker.stop();
  });

  async function rig(o: { capacityWh?: number | null; omitSoc?: boolean; omitFields?: string[]; socPct?: number } = {}) {
    const clock = new VirtualClock(T0_MS);
    const site = new SimSite({
      clock, vehicle: { capacityWh: 60_000, socPct: o.socPct ?? 80, maxChargeW: 11_000, maxDischargeW: 11_000 },
      inverter: { ratedW: 11_000, efficiency: 0.95 }, houseLoadW: 500, sheddableLoadsW: [300],
    });
    const config = loadConfig(null, {
      timezone: 'UTC', uplink: { url: null },
      vehicle: { departureTime: null, dischargeFloorPct: 30, capacityWh: o.capacityWh ?? null },
      vehicleLink: { driver: 'everest', url: broker.url, evseId: EVSE, forwardLimit: true },
    });
    const link = new EverestVehicleLink({ url: broker.url, evseId: EVSE, clock, forwardLimit: true });
    // subscribed before the bridge's first publication (the runtime's own open() is then a no-op)
    await link.open();
    const bridge: SimEverestBridge = await startSimEverestBridge({ url: broker.url, evseId: EVSE, car: site.car, clock, periodMs: 1000, omitSoc: o.omitSoc, omitFields: o.omitFields });
    const responses: DispatchResponse[] = [];
    const rt = new Runtime({ ports: { ...site.ports(), vehicle: link }, config, onResponse: (r) => responses.push(r) });
    await rt.start();
    site.startPhysics(1000);
    const sent = () => Object.values(bridge.published).reduce((a, b) => a + b, 0);
    /** One second: physics, a bridge period delivered to the link, then a runtime tick that sees it. */
    const second = async () => {
      clock.advance(1000);
      await waitFor(() => link.counters.messages >= sent(), 'bridge period delivered');
      rt.requestTick();
      await rt.settled();
    };
    const dispatch = async (id: string, powerW: number, durationS: number) => {
      const req = { id, powerW, durationS };
      rt.submit({ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: clock.nowMs(), source: 'device' });
      await rt.settled();
    };
    const stop = async () => {
      site.stopPhysics();
      await rt.stop();
      await bridge.stop();
    };
    // the car is seen before anything is asked of it
    await second();
    await second();
    return { clock, site, link, bridge, rt, responses, second, dispatch, stop };
  }

  it('discharges on dispatch with the limit forwarded; a stalled feed goes to zero power', async () => {
    const r = await rig();
    try {
      assert.equal(r.rt.status().socSource, 'vehicle');
      await r.dispatch('d1', -4_000, 3_600);
      for (let i = 0; i < 3; i++) await r.second();
      assert.equal(r.rt.status().mode, 'discharge');
      assert.equal(r.site.inverter.setpointW, -4_000);
      await waitFor(() => r.bridge.receivedLimitsW.includes(-4_000), 'the limit forwarded to the bridge');
      r.bridge.publishing = false;
      // past control.socMaxAgeS (30 s) without news from the bridge
      for (let i = 0; i < 35; i++) {
        r.clock.advance(1000);
        await r.rt.settled();
      }
      assert.equal(r.rt.status().setpointW, 0);
      assert.equal(r.site.inverter.setpointW, 0);
      assert.ok((r.rt.status().socAgeS ?? 0) > 30);
    } finally {
      await r.stop();
    }
  });

  async function unplugDuringDispatch() {
    const r = await rig();
    await r.dispatch('d2', -4_000, 3_600);
    for (let i = 0; i < 3; i++) await r.second();
    assert.equal(r.rt.status().mode, 'discharge');
    r.bridge.unplug();
    await r.second();
    await r.second();
    return r;
  }

  it('unplug: the dispatch is curtailed with reason no_vehicle and the power goes to zero', async () => {
    const r = await unplugDuringDispatch();
    try {
      assert.equal(r.link.state().connected, false);
      assert.equal(r.site.inverter.setpointW, 0);
      assert.equal(r.rt.status().setpointW, 0);
      const curtailed = r.responses.find((x) => x.id === 'd2' && x.status === 'curtailed');
      assert.ok(curtailed, JSON.stringify(r.responses));
      assert.equal(curtailed.reason, 'no_vehicle');
    } finally {
      await r.stop();
    }
  });

  it('unplug: the mode goes idle', async () => {
    const r = await unplugDuringDispatch();
    try {
      assert.equal(r.rt.status().mode, 'idle');
    } finally {
      await r.stop();
    }
  });

  it('a car that never sends SoC or capacity: no discharge without a configured capacity', async () => {
    const r = await rig({ omitSoc: true, omitFields: ['battery_capacity'] });
    try {
      await r.dispatch('d3', -4_000, 3_600);
      for (let i = 0; i < 5; i++) await r.second();
      assert.equal(r.link.state().socPct, undefined);
      assert.equal(r.rt.status().socSource, 'none');
      // charging is still allowed (the car ends it when full); discharging is not
      assert.ok(r.site.inverter.setpointW >= 0, `setpoint ${r.site.inverter.setpointW}`);
      assert.notEqual(r.rt.status().mode, 'discharge');
      assert.ok(r.responses.every((x) => x.id !== 'd3' || x.status !== 'active'), JSON.stringify(r.responses));
    } finally {
      await r.stop();
    }
  });

  it('SoC sent once then no more: with the capacity configured, tracked and discharged, within 1 %', async () => {
    const r = await rig({ capacityWh: 60_000 });
    try {
      assert.equal(r.rt.status().socSource, 'vehicle');
      r.bridge.omitSoc = true;
      r.bridge.omitFields = ['battery_capacity'];
      await r.second();
      await r.dispatch('d4', -6_000, 3_600);
      for (let i = 0; i < 600; i++) await r.second();
      const st = r.rt.status();
      assert.equal(st.socSource, 'tracked');
      assert.equal(st.mode, 'discharge');
      assert.ok(r.site.car.socPct < 78.5, `the car was discharged: ${r.site.car.socPct}`);
      assert.ok(Math.abs((st.socPct ?? 0) - r.site.car.socPct) < 1, `tracked ${st.socPct} vs car ${r.site.car.socPct}`);
    } finally {
      await r.stop();
    }
  });
});
