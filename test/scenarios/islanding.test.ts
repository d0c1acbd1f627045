import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseScenario, runScenario } from '../../src/simulate.ts';

const START = Date.parse('2026-11-23T18:00:00Z');

test('an outage islands in order, at once on the grid edge, and rejoins only after a stable reconnect delay', async () => {
  const sc = parseScenario({
    start: '2026-11-23T18:00:00Z', timezone: 'UTC',
    vehicle: { capacityWh: 40000, socPct: 90 }, inverter: { ratedW: 11000, efficiency: 0.95 },
    config: { vehicle: { departureTime: null }, backup: { reconnectDelayS: 300 } },
    houseLoadW: 800, sheddableLoadsW: [500, 500], durationS: 2400,
    events: [
      { at: 100.5, gridDown: true }, { at: 1000, gridUp: true }, { at: 1100, gridDown: true }, { at: 1150, gridUp: true },
    ],
  });
  const r = await runScenario(sc);
  const acts = r.site.actuations.map((a) => ({ ...a, t: (a.atMs - START) / 1000 }));

  // leaving the grid: setpoint 0, then contactor open, then grid-forming — each time it happens
  const opens = acts.filter((a) => a.what === 'contactor' && a.value === false);
  assert.equal(opens.length, 1, 'the flicker came while still islanded: it restarts the delay, nothing else');
  for (const open of opens) {
    const i = acts.indexOf(open);
    const lastSetpoint = acts.slice(0, i).reverse().find((a) => a.what === 'setpoint');
    assert.equal(lastSetpoint?.value, 0, 'power to zero before the contactor opens');
    const forming = acts.slice(i).find((a) => a.what === 'gridForming' && a.value === true);
    assert.ok(forming, 'grid-forming follows');
    const closeBetween = acts.slice(i, acts.indexOf(forming!)).some((a) => a.what === 'contactor' && a.value === true);
    assert.ok(!closeBetween, 'never grid-forming with the contactor closed');
  }
  // reacted on the edge, not on the next 1 s tick (20 ms debounce)
  assert.ok(opens[0].t - 100.5 <= 0.05, `contactor opened ${((opens[0].t - 100.5) * 1000).toFixed(0)} ms after the edge`);

  // rejoining: grid-forming off, then contactor closed, only 300 s after the grid came back for good
  const closes = acts.filter((a) => a.what === 'contactor' && a.value === true);
  assert.equal(closes.length, 1, 'rejoined once: the flicker at 1100 s restarted the delay');
  assert.ok(closes[0].t >= 1150 + 300, `rejoined at ${closes[0].t} s`);
  const ci = acts.indexOf(closes[0]);
  const lastForming = acts.slice(0, ci).reverse().find((a) => a.what === 'gridForming');
  assert.equal(lastForming?.value, false, 'grid-forming off before the contactor closes');

  // the house was served through both outages
  assert.ok(r.summary.outageServedS >= r.summary.outageS - 2, JSON.stringify(r.summary));
  assert.equal(r.summary.floorBreaches, 0);
  assert.ok(r.eventLog.some((e) => /grid lost/.test(e.message)));
});

test('a contactor whose feedback sticks closed: fault, alarm, never grid-forming', async () => {
  const sc = parseScenario({
    start: '2026-11-23T18:00:00Z', timezone: 'UTC', vehicle: { capacityWh: 40000, socPct: 90 },
    config: { vehicle: { departureTime: null } }, houseLoadW: 500, durationS: 120,
    events: [{ at: 10, contactorStuck: 'closed' }, { at: 20, gridDown: true }],
  });
  const r = await runScenario(sc);
  assert.ok(!r.site.actuations.some((a) => a.what === 'gridForming' && a.value === true));
  assert.ok(r.summary.modes.fault > 0);
  assert.ok(r.eventLog.some((e) => e.severity === 'alarm' && /contactor/.test(e.message)));
});
