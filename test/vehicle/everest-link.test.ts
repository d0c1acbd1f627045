/**
 * The EVerest vehicle link against a real broker (Mosquitto when installed) and the simulated bridge:
 * plug-in, SoC updates, limit changes, departure, unplug, a stalled feed, the forwarded power limit and
 * a broker that goes away.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, freePort, type TestBroker } from '../helpers/broker.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimCar } from '../../hal/sim/car.ts';
import { startSimEverestBridge, type SimEverestBridge } from '../../hal/sim/everest-bridge.ts';
import { readFileSync } from 'node:fs';
import { EverestVehicleLink, everestOptionsFromConfig } from '../../hal/vehicle/everest.ts';
import { T0_MS, logCollector, waitFor } from './helpers.ts';

const EVSE = 'evse_manager';

function newCar(): SimCar {
  return new SimCar({
    capacityWh: 60_000, socPct: 40, maxChargeW: 11_000, maxDischargeW: 10_000,
    minSocPct: 15, targetSocPct: 80, departureAtMs: T0_MS + 12 * 3600_000,
  });
}

describe('EverestVehicleLink with the simulated bridge on a real broker', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startBroker();
  });
  after(async () => {
    await broker.stop();
  });

  async function rig(opts: { forwardLimit?: boolean; iso20Fields?: boolean; omitSoc?: boolean; evseId?: string } = {}) {
    const clock = new VirtualClock(T0_MS);
    const car = newCar();
    const logs = logCollector();
    const evseId = opts.evseId ?? EVSE;
    const link = new EverestVehicleLink({ url: broker.url, evseId, clock, forwardLimit: opts.forwardLimit ?? true, log: logs.log, reconnectMinMs: 50, reconnectMaxMs: 200 });
    await link.open();
    assert.equal(link.state().fault, undefined, 'connected after open()');
    const bridge: SimEverestBridge = await startSimEverestBridge({ url: broker.url, evseId, car, clock, periodMs: 1000, iso20Fields: opts.iso20Fields, omitSoc: opts.omitSoc });
    const sent = () => Object.values(bridge.published).reduce((a, b) => a + b, 0);
    const tick = async (ms = 1000) => {
      clock.advance(ms);
      await waitFor(() => link.counters.messages + link.counters.rejectedMessages >= sent(), 'a period of bridge messages');
    };
    const stop = async () => {
      await bridge.stop();
      await link.close();
    };
    return { clock, car, link, bridge, logs, tick, stop };
  }

  it('plug-in: the car appears with SoC, capacity, limits, wishes and departure', async () => {
    const r = await rig();
    try {
      await waitFor(() => r.link.state().connected && r.link.state().socPct !== undefined, 'car plugged with SoC');
      const s = r.link.state();
      assert.equal(s.connected, true);
      assert.equal(s.socPct, 40);
      assert.equal(s.socAtMs, T0_MS);
      assert.equal(s.atMs, T0_MS);
      assert.equal(s.capacityWh, 60_000);
      assert.equal(s.maxChargeW, 11_000);
      assert.equal(s.maxDischargeW, 10_000);
      assert.equal(s.bidirectional, true);
      assert.equal(s.minSocPct, 15);
      assert.equal(s.targetSocPct, 80);
      assert.equal(s.departureAtMs, T0_MS + 12 * 3600_000);
      assert.equal(s.remainingEnergyWh, 24_000);
      assert.equal(s.chargedWh, 0);
      assert.equal(s.dischargedWh, 0);
      assert.equal(s.sessionState, 'ChargingPausedEVSE');
      assert.equal(s.fault, undefined);
      assert.deepEqual(r.logs.lines.filter((l) => l.startsWith('warn')), []);
    } finally {
      await r.stop();
    }
  });

  it('SoC updates follow the car, with socAtMs at the message time', async () => {
    const r = await rig();
    try {
      await waitFor(() => r.link.state().socPct === 40, 'first SoC');
      for (let i = 1; i <= 5; i++) {
        r.car.step(11_000, 600);
        await r.tick();
        await waitFor(() => Math.abs((r.link.state().socPct ?? -1) - r.car.socPct) < 0.01, `SoC step ${i}`);
        const s = r.link.state();
        assert.equal(s.socAtMs, r.clock.nowMs());
        assert.equal(s.socReportedAtMs, r.clock.nowMs());
        assert.ok(Math.abs((s.chargedWh ?? 0) - r.car.chargedWh) < 0.01);
      }
      // discharging moves the other counter
      r.car.step(-10_000, 360);
      await r.tick();
      await waitFor(() => (r.link.state().dischargedWh ?? 0) > 999, 'discharge counted');
      assert.ok(Math.abs((r.link.state().dischargedWh ?? 0) - 1000) < 0.01);
    } finally {
      await r.stop();
    }
  });

  it("the car's SoC is trusted too long: its time is when the car sent it, session_info does not renew it", async () => {
    const r = await rig();
    try {
      await waitFor(() => r.link.state().socPct === 40, 'first SoC');
      const evBefore = r.bridge.published['var/ev_info'];
      for (let i = 0; i < 3; i++) await r.tick();
      assert.equal(r.bridge.published['var/ev_info'], evBefore, 'no ev_info while nothing changes');
      assert.ok(r.clock.nowMs() > T0_MS);
      assert.equal(r.link.state().socAtMs, T0_MS, 'the time the car sent it');
      assert.equal(r.link.state().socReportedAtMs, T0_MS);
      // the car stops sending SoC while energy keeps flowing: the last figure must age
      r.bridge.omitSoc = true;
      r.car.step(11_000, 600);
      await r.tick();
      await waitFor(() => r.link.state().socPct === undefined, 'ev_info without soc');
      assert.equal(r.link.state().socAtMs, undefined);
    } finally {
      await r.stop();
    }
  });

  it('consent to discharge is decided by a driver', async () => {
    const r = await rig({ iso20Fields: false });
    try {
      await waitFor(() => r.link.state().socPct === 40, 'first SoC');
      // the car sends no discharge limit: the link says so, and reports the charger's export capability
      // (16 A × 230 V × 3 phases from hardware_capabilities) apart, as the charger's
      const s = r.link.state();
      assert.equal(s.maxDischargeW, undefined);
      assert.equal(s.carDischargeLimitW, undefined);
      assert.equal(s.chargerExportCapabilityW, 16 * 230 * 3);
      assert.equal(s.bidirectional, undefined);
    } finally {
      await r.stop();
    }
  });

  it('limit changes: the car lowers its limits; without a car charge limit the charger currents stand in', async () => {
    const r = await rig({ iso20Fields: false });
    try {
      await waitFor(() => r.link.state().socPct === 40, 'first SoC');
      assert.equal(r.link.state().bidirectional, undefined);
      assert.equal(r.link.state().minSocPct, undefined);
      r.car.maxChargeW = 7_000;
      await r.tick();
      await waitFor(() => r.link.state().maxChargeW === 7_000, 'new charge limit');
      // taper near full lowers what the car accepts
      r.car.socPct = 90;
      await r.tick();
      await waitFor(() => r.link.state().maxChargeW === 3_500, 'tapered charge limit');
    } finally {
      await r.stop();
    }
  });

  it('departure time and target changes reach the port', async () => {
    const r = await rig();
    try {
      await waitFor(() => r.link.state().departureAtMs !== undefined, 'first departure');
      r.car.departureAtMs = T0_MS + 3 * 3600_000 + 1500;
      r.car.targetSocPct = 90;
      await r.tick();
      await waitFor(() => r.link.state().targetSocPct === 90, 'new target');
      // EVerest sends RFC 3339 with milliseconds: kept to the millisecond
      assert.equal(r.link.state().departureAtMs, T0_MS + 3 * 3600_000 + 1500);
      r.car.departureAtMs = undefined;
      await r.tick();
      await waitFor(() => r.link.state().departureAtMs === undefined, 'departure withdrawn');
    } finally {
      await r.stop();
    }
  });

  it('unplug: connected false at once, car data gone, onChange fired; a new session starts from zero', async () => {
    const r = await rig();
    try {
      await waitFor(() => r.link.state().socPct === 40, 'first SoC');
      r.car.step(11_000, 600);
      await r.tick();
      await waitFor(() => (r.link.state().chargedWh ?? 0) > 0, 'energy counted');
      let changes = 0;
      const off = r.link.onChange(() => changes++);
      r.bridge.unplug();
      await r.tick();
      await waitFor(() => !r.link.state().connected, 'unplugged');
      const s = r.link.state();
      assert.equal(s.sessionState, 'Unplugged');
      for (const k of ['socPct', 'socAtMs', 'capacityWh', 'maxChargeW', 'maxDischargeW', 'departureAtMs', 'minSocPct', 'targetSocPct'] as const)
        assert.equal(s[k], undefined, k);
      assert.equal(changes, 1);
      r.bridge.plugIn();
      await r.tick();
      await waitFor(() => r.link.state().connected && r.link.state().socPct !== undefined, 'plugged again');
      assert.equal(r.link.state().chargedWh, 0);
      assert.equal(changes, 2);
      off();
    } finally {
      await r.stop();
    }
  });

  it('stale feed: when the bridge stops publishing, socAtMs and atMs stop advancing', async () => {
    const r = await rig();
    try {
      await waitFor(() => r.link.state().socPct === 40, 'first SoC');
      await r.tick();
      const last = r.link.state();
      assert.equal(last.atMs, r.clock.nowMs());
      assert.equal(last.socAtMs, T0_MS, 'when the car sent it');
      r.bridge.publishing = false;
      for (let i = 0; i < 40; i++) r.clock.advance(1000);
      await new Promise((res) => setTimeout(res, 100));
      assert.equal(r.bridge.published['var/session_info'], 2, 'nothing published while stalled');
      const s = r.link.state();
      assert.equal(s.socAtMs, last.socAtMs);
      assert.equal(s.atMs, last.atMs);
      assert.equal(s.socPct, 40, 'the figure stays; the link\'s age (atMs) tells the core it is stale');
      assert.ok(r.clock.nowMs() - s.atMs >= 40_000);
    } finally {
      await r.stop();
    }
  });

  it('forwards the power limit to cmd/set_limit_watts: positive charge, negative discharge, refreshed', async () => {
    const r = await rig({ forwardLimit: true });
    try {
      await r.link.setPowerLimitW(7_400.4);
      await waitFor(() => r.bridge.receivedLimitsW.length === 1, 'first limit');
      await r.link.setPowerLimitW(-5_000);
      await waitFor(() => r.bridge.receivedLimitsW.length === 2, 'second limit');
      // unchanged within the refresh period: not re-sent; after it: re-sent
      await r.link.setPowerLimitW(-5_000);
      r.clock.advance(10_000);
      await r.link.setPowerLimitW(-5_000);
      await waitFor(() => r.bridge.receivedLimitsW.length === 3, 'refresh');
      await r.link.setPowerLimitW(Number.NaN);
      await new Promise((res) => setTimeout(res, 30));
      assert.deepEqual(r.bridge.receivedLimitsW, [7_400, -5_000, -5_000]);
      assert.deepEqual(r.bridge.rejectedLimits, []);
      assert.ok(r.logs.lines.some((l) => l.includes('not a number')));
    } finally {
      await r.stop();
    }
  });

  it('an unchanged limit is refreshed on the bridge heartbeat (a restarted stack gets it back)', async () => {
    const r = await rig({ forwardLimit: true });
    try {
      await r.link.setPowerLimitW(4_000);
      await waitFor(() => r.bridge.receivedLimitsW.length === 1, 'first limit');
      for (let i = 0; i < 10; i++) await r.tick();
      await waitFor(() => r.bridge.receivedLimitsW.length === 2, 'refreshed limit');
      assert.deepEqual(r.bridge.receivedLimitsW, [4_000, 4_000]);
    } finally {
      await r.stop();
    }
  });

  it('options from the default config section', () => {
    const vl = JSON.parse(readFileSync(new URL('../../config/default.json', import.meta.url), 'utf8')).vehicleLink;
    const clock = new VirtualClock(T0_MS);
    const o = everestOptionsFromConfig(vl, clock);
    assert.deepEqual({ ...o, clock: undefined }, {
      url: 'mqtt://127.0.0.1:1883', evseId: 'evse_manager', clock: undefined, forwardLimit: false, phases: undefined,
      nominalVoltageV: 230, connectTimeoutMs: 5000,
    });
    assert.equal(new EverestVehicleLink(o).state().connected, false);
  });

  it('does not publish a limit when forwardLimit is false', async () => {
    const r = await rig({ forwardLimit: false });
    try {
      await r.link.setPowerLimitW(3_000);
      await r.tick();
      assert.deepEqual(r.bridge.receivedLimitsW, []);
      assert.equal(r.link.counters.limitsPublished, 0);
    } finally {
      await r.stop();
    }
  });

  it('a broker that goes away: fault with cause, nothing rejects, reconnects and resumes', async () => {
    let own = await startBroker();
    const clock = new VirtualClock(T0_MS);
    const car = newCar();
    const logs = logCollector();
    const link = new EverestVehicleLink({ url: own.url, evseId: EVSE, clock, forwardLimit: true, log: logs.log, reconnectMinMs: 50, reconnectMaxMs: 200 });
    const rejections: unknown[] = [];
    const onRejection = (e: unknown) => rejections.push(e);
    process.on('unhandledRejection', onRejection);
    let bridge: SimEverestBridge | undefined;
    try {
      await link.open();
      bridge = await startSimEverestBridge({ url: own.url, evseId: EVSE, car, clock, periodMs: 1000 });
      await waitFor(() => link.state().socPct === 40, 'first SoC');
      let changes = 0;
      link.onChange(() => changes++);
      await own.stop();
      await waitFor(() => link.state().fault?.code === 'disconnected', 'disconnected fault');
      const f = link.state().fault!;
      assert.match(f.message, /127\.0\.0\.1/);
      assert.equal(f.sinceMs, clock.nowMs());
      assert.ok(changes >= 1);
      await link.refresh();
      await link.setPowerLimitW(-2_000);
      clock.advance(5_000);
      await new Promise((res) => setTimeout(res, 300));
      assert.equal(link.state().fault?.code, 'disconnected');
      assert.equal(link.state().fault?.sinceMs, T0_MS, 'sinceMs is when the fault began');
      const sentBefore = link.counters.limitsPublished;
      own = await startBroker({ port: own.port });
      await waitFor(() => link.state().fault === undefined, 'reconnected', 1000);
      assert.equal(link.counters.limitsPublished, sentBefore + 1, 'the last limit is re-sent on reconnect');
      // the bridge may come back after that: the runtime's next calls refresh it
      await waitFor(() => {
        clock.advance(10_000);
        void link.setPowerLimitW(-2_000);
        return bridge!.receivedLimitsW.includes(-2_000);
      }, 'limit reaches the bridge after reconnect', 1000);
      car.step(11_000, 600);
      const before = link.counters.messages;
      await waitFor(() => {
        clock.advance(1000);
        return link.counters.messages > before + 3 && Math.abs((link.state().socPct ?? 0) - car.socPct) < 0.01;
      }, 'data again after reconnect', 1000);
      assert.ok(link.counters.connects >= 2);
      assert.deepEqual(rejections, []);
    } finally {
      await bridge?.stop();
      await link.close();
      await own.stop();
      process.off('unhandledRejection', onRejection);
    }
  });

  it('open() with no broker resolves with a disconnected fault, then connects when the broker appears', async () => {
    const port = await freePort();
    const clock = new VirtualClock(T0_MS);
    const link = new EverestVehicleLink({ url: `mqtt://127.0.0.1:${port}`, evseId: EVSE, clock, forwardLimit: false, connectTimeoutMs: 200, reconnectMinMs: 50, reconnectMaxMs: 100 });
    let late: TestBroker | undefined;
    try {
      await link.open();
      assert.equal(link.state().fault?.code, 'disconnected');
      assert.equal(link.state().connected, false);
      late = await startBroker({ port });
      await waitFor(() => link.state().fault === undefined, 'connected to the late broker', 1000);
    } finally {
      await link.close();
      await late?.stop();
    }
  });

  it('open() rejects a bad URL or EVSE id, naming it', async () => {
    const clock = new VirtualClock(T0_MS);
    await assert.rejects(new EverestVehicleLink({ url: 'not a url', evseId: EVSE, clock, forwardLimit: false }).open(), /not a URL/);
    await assert.rejects(new EverestVehicleLink({ url: 'http://127.0.0.1:1', evseId: EVSE, clock, forwardLimit: false }).open(), /mqtt:\/\//);
    await assert.rejects(new EverestVehicleLink({ url: broker.url, evseId: 'a/#', clock, forwardLimit: false }).open(), /EVSE id/);
  });
});
