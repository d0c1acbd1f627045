/**
 * Validator problems in the homeowner's words: every rule the schema can break, as the validator
 * (src/config/load.ts) writes it, becomes plain language with the value given, never a raw regex.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, defaultConfigJson, mergeConfig, validateConfig } from '../../src/config/load.ts';
import { plainProblem } from '../../src/homeowner/wording.ts';

/** Validate a change over the defaults the way a real config set does, and word every problem. */
function worded(over: Record<string, unknown>): string[] {
  const candidate = mergeConfig(defaultConfigJson(), { deviceId: 'w', inverter: { driver: 'sim' }, vehicleLink: { driver: 'sim' }, ...over } as never);
  try {
    validateConfig(candidate);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems.map((p) => { const q = plainProblem(p, candidate); return `${q.key} ${q.message}`; });
  }
  return [];
}

test('each kind of rule in plain words, with the value given', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ vehicle: { departureTime: '7:30' } }, 'vehicle.departureTime must be a time like 07:30 (24-hour HH:MM); you gave "7:30"'],
    [{ vehicle: { dischargeFloorPct: -1 } }, 'vehicle.dischargeFloorPct must be at least 0; you gave -1'],
    [{ vehicle: { targetSocPct: 101 } }, 'vehicle.targetSocPct must be at most 100; you gave 101'],
    [{ vehicle: { capacityWh: 0 } }, 'vehicle.capacityWh must be more than 0; you gave 0'],
    [{ vehicle: { v2gEnabled: 'yes' } }, 'vehicle.v2gEnabled must be true or false; you gave "yes"'],
    [{ vehicle: { maxDischargeW: 'lots' } }, 'vehicle.maxDischargeW must be a number or null (none); you gave "lots"'],
    [{ vehicle: { chargeStrategy: 'asap' } }, 'vehicle.chargeStrategy must be one of "departure" or "immediate"; you gave "asap"'],
    [{ reward: { currency: 'euro' } }, 'reward.currency must be a three-letter currency code like EUR; you gave "euro"'],
    [{ deviceId: 'a/b' }, 'deviceId may hold only letters, digits, "_" and "-", 1 to 64 of them; you gave "a/b"'],
    [{ vehicle: { dischargeFloor: 40 } }, 'vehicle.dischargeFloor is not a setting (check the spelling; `wallbox config get` shows them all)'],
    [{ backup: { gridLossAlarms: ['GRID_DISCONNECT', 'GRID_DISCONNECT'] } }, 'backup.gridLossAlarms must not list the same entry twice; you gave ["GRID_DISCONNECT","GRID_DISCONNECT"]'],
    [{ vehicle: { backupFloorPct: 60 } }, 'vehicle.backupFloorPct must not exceed vehicle.dischargeFloorPct (60 > 50)'],
  ];
  for (const [over, want] of cases) assert.deepEqual(worded(over), [want], JSON.stringify(over));
});

test('no raw pattern ever reaches a person', () => {
  for (const over of [{ vehicle: { departureTime: 'x' } }, { deviceId: '' }, { reward: { currency: 'e' } }, { overrides: { pauseV2g: { until: 'friday' } } }])
    for (const line of worded(over)) assert.doesNotMatch(line, /\^|\$|\[0-9\]|\\d/, line);
});
