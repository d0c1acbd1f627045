/**
 * The whole runtime with a site meter, on the virtual clock: a house-load step that would trip the main
 * fuse cuts the car's power at the next tick; a meter that stops updating makes the core fall back to the
 * assumed house load (never to house = 0). The simulated site's meter reports grid power and per-phase
 * currents from its physics; the expected figures are worked out from the fuse and the loads below.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import type { SiteMeterPort } from '../../hal/ports.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';

const T = Date.parse('2026-11-23T10:00:00Z');
const V = 230;
const FUSE_A = 25;
const STEP_AT_S = 20;
const HOUSE_AFTER_W = 8000;

function setup(extra: Record<string, unknown> = {}) {
  const clock = new VirtualClock(T);
  const site = new SimSite({
    clock,
    vehicle: { capacityWh: 60000, socPct: 40, maxChargeW: 11000, maxDischargeW: 11000 },
    inverter: { ratedW: 11000, efficiency: 0.95 },
    houseLoadW: [[0, 500], [STEP_AT_S, HOUSE_AFTER_W]],
  });
  const config = loadConfig(null, {
    timezone: 'UTC',
    vehicle: { departureTime: null, chargeStrategy: 'immediate', targetSocPct: 100 },
    site: { fuseA: FUSE_A, gridImportLimitW: null },
    uplink: { url: null },
    ...extra,
  });
  site.startPhysics(100);
  return { clock, site, config };
}

async function run(rt: Runtime, clock: VirtualClock, untilS: number, stepMs = 100): Promise<void> {
  while (clock.nowMs() < T + untilS * 1000) {
    clock.advance(stepMs);
    await rt.settled();
  }
}

test('a house-load step that would trip the fuse cuts the car within one tick', async () => {
  const { clock, site, config } = setup();
  const rt = new Runtime({ ports: site.ports(), config });
  await rt.start();
  await run(rt, clock, STEP_AT_S - 1);
  // before the step: 500 W of house is 0.72 A a phase, so the car takes its full 11 kW
  assert.equal(site.inverter.setpointW, 11000);
  await run(rt, clock, STEP_AT_S + 5);
  // after: 8000 W over three phases is 11.59 A a phase; the car may have (25 − 11.59) A × 230 V × 3
  const houseA = HOUSE_AFTER_W / (3 * V);
  const allowedW = (FUSE_A - houseA) * V * 3;
  const cut = site.actuations.find((a) => a.what === 'setpoint' && a.atMs >= T + STEP_AT_S * 1000 && (a.value as number) <= allowedW + 1);
  assert.ok(cut, `no setpoint at or below ${allowedW.toFixed(0)} W after the step: ${JSON.stringify(site.actuations.slice(-5))}`);
  const tickMs = config.control.tickS * 1000;
  assert.ok(cut.atMs - (T + STEP_AT_S * 1000) <= tickMs, `cut ${cut.atMs - T - STEP_AT_S * 1000} ms after the step (tick ${tickMs} ms)`);
  assert.ok(Math.abs((cut.value as number) - allowedW) < 50, `cut to ${cut.value} W, expected about ${allowedW.toFixed(0)} W`);
  // and the phases stay within the fuse once the car follows
  for (const a of site.phaseCurrentsA()) assert.ok(a <= FUSE_A + 0.01, `phase at ${a.toFixed(2)} A`);
  assert.equal(rt.status().setpointW <= allowedW + 1, true);
  // status carries the meter's grid figure as the simulated site measures it (house + car − PV, import +)
  const st = rt.status().site;
  assert.ok(st && typeof st.gridPowerW === 'number', JSON.stringify(st));
  assert.ok(Math.abs(st.gridPowerW! - site.gridPowerW()) <= Math.abs(site.gridPowerW()) * 0.02 + 50, `status ${st.gridPowerW} W, site ${site.gridPowerW()} W`);
  assert.equal(st.gridAgeS !== null && st.gridAgeS <= 1, true);
  await rt.stop();
});

test('a meter that stops updating: the core falls back to the assumed house load, never to 0', async () => {
  // no fuse here: the grid import limit with a 3000 W assumption binds once the meter is stale
  const { clock, site, config } = setup({ site: { fuseA: null, gridImportLimitW: 10000, assumedHouseLoadW: 3000, houseLoadMaxAgeS: 5 } });
  const ports = site.ports();
  const meter = ports.siteMeter!;
  let frozen = false;
  const freezable: SiteMeterPort = { kind: 'site-meter', open: () => meter.open(), refresh: () => (frozen ? Promise.resolve() : meter.refresh()), state: () => meter.state(), close: () => meter.close() };
  const rt = new Runtime({ ports: { ...ports, siteMeter: freezable }, config });
  await rt.start();
  await run(rt, clock, 10);
  // metered: 10000 − 500 W of house leaves the car its full 11 kW capped at 9500 W
  assert.equal(site.inverter.setpointW, 9500);
  frozen = true;
  await run(rt, clock, 17);
  // 5 s later the reading is stale: 10000 − 3000 assumed
  assert.equal(site.inverter.setpointW, 7000);
  frozen = false;
  await run(rt, clock, 19);
  assert.equal(site.inverter.setpointW, 9500);
  await rt.stop();
});

test('the real SunSpec meter stops answering: the runtime falls back to the assumed house load, and back', async () => {
  const { createSimMeterDevice, startSimModbusGateway } = await import('../../hal/sim/meter-server.ts');
  const { SunspecMeter } = await import('../../hal/meter/sunspec/driver.ts');
  const { freePort } = await import('../helpers/broker.ts');
  const { clock, site, config } = setup({ site: { fuseA: null, gridImportLimitW: 10000, assumedHouseLoadW: 3000, houseLoadMaxAgeS: 5 } });
  site.setLoads({ houseLoadW: 500 });
  const dev = createSimMeterDevice({ model: 213, unitId: 2, read: () => ({ gridPowerW: site.gridPowerW(), phaseCurrentsA: site.phaseCurrentsA(), importedWh: 1, exportedWh: 1 }) });
  const port = await freePort();
  const gw = await startSimModbusGateway({ port, devices: [dev] });
  // the meter times I/O in real time and stamps readings with the runtime's (virtual) clock
  const meter = new SunspecMeter({ link: { kind: 'tcp', host: '127.0.0.1', port, unitId: 2 }, base: null, invertSign: false, timeoutMs: 150, retries: 0, clock });
  const rt = new Runtime({ ports: { ...site.ports(), siteMeter: meter }, config });
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 60 && !ok(); i++) {
      clock.advance(1000);
      await new Promise((r) => setTimeout(r, 40));
      await rt.settled();
    }
    assert.ok(ok(), `${what}: setpoint ${site.inverter.setpointW} W, meter ${JSON.stringify(meter.state())}`);
  };
  try {
    await rt.start();
    // metered through the driver: house = grid − car = 500 W, so 10000 − 500
    await until('metered', () => site.inverter.setpointW === 9500);
    dev.faults.silent = true;
    await until('fallback', () => site.inverter.setpointW === 7000);
    assert.equal(meter.state().fault?.code, 'timeout');
    dev.faults.silent = false;
    await until('back', () => site.inverter.setpointW === 9500);
  } finally {
    await rt.stop();
    await meter.close();
    await gw.close();
  }
});
