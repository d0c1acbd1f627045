/**
 * Every reason code docs/mqtt.md documents is one the code emits: the table is read from the document
 * itself, and the control core is driven into each code. A code only another part emits is exempted by
 * name, with where it is emitted and tested; a new code in the document without a way here fails.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { ControlSettings } from '../../src/config/types.ts';
import type { DispatchCommand, Memory, Plan } from '../../src/control/types.ts';
import { T0, cancelCmd, dispatchCmd, settings, snapshot } from '../helpers/control.ts';

/** Reason codes of the table under "Statuses and reasons" in docs/mqtt.md. */
function documentedReasons(): string[] {
  const md = readFileSync(new URL('../../docs/mqtt.md', import.meta.url), 'utf8');
  const start = md.indexOf('| reason | meaning |');
  assert.ok(start >= 0, 'docs/mqtt.md has a reason table');
  const rows = md.slice(start).split('\n').slice(2);
  const codes: string[] = [];
  for (const row of rows) {
    if (!row.startsWith('|')) break;
    const first = row.split('|')[1] ?? '';
    for (const m of first.matchAll(/`([a-z_]+)`/g)) codes.push(m[1]);
  }
  return codes;
}

/** Codes the core does not emit, and who does. */
const ELSEWHERE: Record<string, string> = {
  signature: 'the uplink codec, before the core (src/uplink; test/uplink)',
  replay: 'the uplink codec, before the core (src/uplink; test/uplink)',
  interrupted: 'the runtime, settling at start-up a dispatch the device died during (src/runtime; test/runtime)',
  underdelivery: 'the core, from the measured AC power over a window (src/control/dispatch.ts updateCurtailment; test/control/dispatch-underdelivery.test.ts)',
  dispatch_limit: 'the uplink intake, beyond the bound on live dispatches (src/uplink/intake.ts; test/uplink/replay-persisted.test.ts)',
  stopped: 'the runtime, settling at a clean stop the dispatch that was running (src/runtime/recovery.ts; test/runtime/ledger-stop-resume.test.ts)',
};

type Step = [number, Parameters<typeof snapshot>[1], ControlSettings?];
const noDeparture = settings({ vehicle: { departureTime: null } });

function reasonsOf(steps: Step[], c: ControlSettings = noDeparture, mem: Memory = initialMemory(T0)): string[] {
  const seen: string[] = [];
  for (const [atS, over, cs] of steps) {
    const now = T0 + atS * 1000;
    const p: Plan = decide(snapshot(now, over), cs ?? c, mem, now);
    mem = p.memory;
    for (const r of p.responses) if (r.reason !== undefined) seen.push(r.reason);
  }
  return seen;
}

const d = (id = 'd', powerW = -7000, durationS = 600, atS = 0, extra: { startMs?: number; expiresAtMs?: number } = {}): DispatchCommand =>
  dispatchCmd(id, powerW, durationS, T0 + atS * 1000, extra);

const open = { commandedClosed: false, feedbackClosed: false };
const island = { contactor: open, inverter: { gridForming: true } };
const outage = settings({ vehicle: { departureTime: null }, backup: { reconnectDelayS: 300, contactorTimeoutS: 2, rejoinRampS: 300 } });

/** How to drive the core to each code. */
const SCENARIOS: Record<string, () => string[]> = {
  invalid: () => {
    const request = { id: 'nan', powerW: Number.NaN, durationS: 600 };
    return reasonsOf([[0, { commands: [{ kind: 'dispatch', request, body: JSON.stringify(request), receivedMs: T0, source: 'device' }] }]]);
  },
  expired: () => reasonsOf([[0, { commands: [d('d', -7000, 600, 0, { expiresAtMs: T0 - 1000 })] }]]),
  duplicate_conflict: () => reasonsOf([[0, { commands: [d('d', -7000)] }], [1, { commands: [d('d', -6000, 600, 1)] }]]),
  v2g_disabled: () => reasonsOf([[0, { commands: [d()] }]], settings({ vehicle: { departureTime: null, v2gEnabled: false } })),
  no_vehicle: () => reasonsOf([[0, { vehicle: { connected: false }, commands: [d()] }]]),
  floor: () => reasonsOf([[0, { vehicle: { socPct: 50 }, commands: [d()] }]]),
  backup_active: () => reasonsOf([[0, { grid: { sensePresent: false }, commands: [d()] }]], outage),
  fault: () => reasonsOf([[0, { runtimeFault: 'relays: open failed', commands: [d()] }]]),
  unknown_id: () => reasonsOf([[0, { commands: [cancelCmd('nope', T0)] }]]),
  already_finished: () => reasonsOf([[0, { commands: [d('f', -3000, 60)] }], [61, {}], [62, { commands: [cancelCmd('f', T0 + 62_000)] }]]),
  departure: () => {
    const c = settings({ timezone: 'UTC', vehicle: { departureTime: '07:30', targetSocPct: 80, departureMarginS: 1800 } });
    const now = Date.parse('2026-11-24T06:00:00Z');
    const p = decide(snapshot(now, { vehicle: { socPct: 60, capacityWh: 60_000 }, commands: [dispatchCmd('d', -7000, 600, now)] }), c, initialMemory(now), now);
    return p.responses.flatMap((r) => (r.reason ? [r.reason] : []));
  },
  max_soc: () => reasonsOf([[0, { vehicle: { socPct: 95, maxSocPct: 95 }, commands: [d('c', 7000)] }]]),
  soc_unknown: () => reasonsOf([[0, { vehicle: { socPct: undefined }, commands: [d()] }]]),
  not_bidirectional: () => reasonsOf([[0, { vehicle: { bidirectional: false }, commands: [d()] }]]),
  no_consent: () => reasonsOf([[0, { vehicle: { bidirectional: undefined, maxDischargeW: undefined }, commands: [d()] }]]),
  storage: () => reasonsOf([[0, { storage: { writable: false, fault: 'SQLITE_FULL: database or disk is full' }, commands: [d()] }]]),
  stale_data: () => reasonsOf([[0, { commands: [d()] }], [10, { inverter: { atMs: T0 } }]]),
  grid_limit: () => {
    // accepted at 3000 + 500 W of house; the house drops to 0: the export limit cuts the dispatch
    const c = settings({ vehicle: { departureTime: null }, site: { gridExportLimitW: 3000 } });
    return reasonsOf([[0, { houseLoadW: 500, houseLoadAtMs: T0, commands: [d('d', -9000)] }], [1, { houseLoadW: 0, houseLoadAtMs: T0 + 1000 }]], c);
  },
  vehicle_limit: () => reasonsOf([[0, { commands: [d()] }], [1, { vehicle: { maxDischargeW: 4000 } }]]),
  inverter_limit: () => reasonsOf([[0, { commands: [d()] }], [1, { inverter: { maxDischargeW: 4000 } }]]),
  homeowner_limit: () => reasonsOf([[0, { commands: [d()] }], [1, {}, settings({ vehicle: { departureTime: null, maxDischargeW: 2000 } })]]),
  estop: () => reasonsOf([[0, { estopPressed: true, commands: [d()] }]]),
  grid_down: () => reasonsOf([[0, { grid: { sensePresent: false }, commands: [d()] }]], settings({ vehicle: { departureTime: null }, backup: { enabled: false } })),
  rejoin_ramp: () =>
    // accepted before an outage to start after it; the grid comes back and the start falls in the ramp
    reasonsOf([
      [0, { commands: [d('late', -7000, 600, 0, { startMs: T0 + 500_000 })] }],
      [1, { grid: { sensePresent: false } }],
      [2, { grid: { sensePresent: false }, contactor: open }],
      [100, { grid: { sensePresent: true }, ...island }],
      [401, { grid: { sensePresent: true }, ...island }],
      [402, { grid: { sensePresent: true }, contactor: open, inverter: { gridForming: false } }],
      [403, { grid: { sensePresent: true }, contactor: { commandedClosed: true, feedbackClosed: true } }],
      // back on the grid at 403 s, 300 s ramp: at 500 s a third of the power (about 3.6 kW of 11 kW)
      [500, {}],
      [501, {}],
    ], outage),
};

describe('every reason code in docs/mqtt.md is emitted', () => {
  const documented = documentedReasons();

  test('the table is read', () => {
    assert.ok(documented.length >= 20, documented.join(', '));
    assert.ok(documented.includes('floor') && documented.includes('rejoin_ramp'));
  });

  for (const code of documented) {
    test(code, (t) => {
      if (ELSEWHERE[code]) {
        t.diagnostic(`emitted by ${ELSEWHERE[code]}`);
        return;
      }
      const scenario = SCENARIOS[code];
      assert.ok(scenario, `no scenario drives the core to \`${code}\`: add one here, or name who emits it in ELSEWHERE`);
      const seen = scenario();
      assert.ok(seen.includes(code), `${code} not emitted; seen: ${seen.join(', ') || 'none'}`);
    });
  }
});
