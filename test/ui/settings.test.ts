/**
 * The page's settings go through setLocalKey (the code behind `wallbox config set`): a valid change is
 * written and keeps the rest of the file; a refused one leaves the file byte for byte and says why in the
 * homeowner's words next to its field; keys that depend on each other go through whatever their order;
 * only homeowner keys can be changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { applySettings, plainProblem, settingFields, UnknownSettingError } from '../../src/ui/settings.ts';

function tmpFile(content: object): { path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-ui-settings-'));
  const path = join(dir, 'local.json');
  writeFileSync(path, JSON.stringify(content, null, 2) + '\n');
  return { path, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const BASE = { deviceId: 'set-test', storage: { path: '/tmp/x.db' }, inverter: { modbus: { host: '127.0.0.1' } }, vehicle: { departureTime: '06:45', dischargeFloorPct: 50 } };

test('every homeowner key of the contract is a field, and nothing an installer sets', () => {
  const keys = settingFields().map((f) => f.key);
  for (const k of ['vehicle.dischargeFloorPct', 'vehicle.backupFloorPct', 'vehicle.targetSocPct', 'vehicle.departureTime', 'vehicle.v2gEnabled', 'vehicle.maxDischargeW', 'backup.enabled', 'backup.targetHours'])
    assert.ok(keys.includes(k), k);
  for (const k of keys) assert.doesNotMatch(k, /^(uplink|inverter|gpio|storage|deviceId|timezone|simulation|vehicleLink|reward)\b/);
});

test('a valid change is written, the rest of the section kept, and the merged config loads', () => {
  const f = tmpFile(BASE);
  try {
    const r = applySettings(f.path, { 'vehicle.dischargeFloorPct': 60 });
    assert.deepEqual(r, { 'vehicle.dischargeFloorPct': { ok: true, value: 60 } });
    const cfg = loadConfig(f.path);
    assert.equal(cfg.vehicle.dischargeFloorPct, 60);
    assert.equal(cfg.vehicle.departureTime, '06:45', 'the departure time set before is kept');
  } finally {
    f.done();
  }
});

test('refusals leave the file byte for byte and speak the homeowner\'s words', () => {
  const f = tmpFile(BASE);
  try {
    const before = readFileSync(f.path, 'utf8');
    const r = applySettings(f.path, { 'vehicle.departureTime': '7h30', 'vehicle.targetSocPct': 140, 'vehicle.backupFloorPct': 70, 'vehicle.v2gEnabled': 'yes' });
    assert.equal(readFileSync(f.path, 'utf8'), before);
    const err = (k: string) => (r[k] as { ok: false; error: string }).error;
    assert.equal(r['vehicle.departureTime'].ok, false);
    assert.equal(err('vehicle.departureTime'), 'must be a time like 07:30 (24-hour clock)');
    assert.equal(err('vehicle.targetSocPct'), 'must be at most 100');
    assert.equal(err('vehicle.backupFloorPct'), 'must not exceed the discharge floor (70 > 50)');
    assert.equal(err('vehicle.v2gEnabled'), 'must be on or off');
    for (const k of Object.keys(r)) assert.doesNotMatch(err(k), /\^|\[0-9\]|vehicle\./, 'no regex and no dotted keys shown');
  } finally {
    f.done();
  }
});

test('keys that depend on each other go through in any order; each key is answered', () => {
  const f = tmpFile(BASE);
  try {
    // the backup floor 65 is only valid once the discharge floor is 70: sent first, it is retried after
    const r = applySettings(f.path, { 'vehicle.backupFloorPct': 65, 'vehicle.dischargeFloorPct': 70, 'vehicle.departureTime': null });
    assert.ok(Object.values(r).every((x) => x.ok), JSON.stringify(r));
    const cfg = loadConfig(f.path);
    assert.equal(cfg.vehicle.backupFloorPct, 65);
    assert.equal(cfg.vehicle.dischargeFloorPct, 70);
    assert.equal(cfg.vehicle.departureTime, null);
    // one good, one bad: the good one is written, the bad one says why, the file holds exactly the good one
    const r2 = applySettings(f.path, { 'vehicle.dischargeFloorPct': 80, 'backup.targetHours': -3 });
    assert.equal(r2['vehicle.dischargeFloorPct'].ok, true);
    assert.equal(r2['backup.targetHours'].ok, false);
    const after = JSON.parse(readFileSync(f.path, 'utf8'));
    assert.equal(after.vehicle.dischargeFloorPct, 80);
    assert.equal(after.backup, undefined);
  } finally {
    f.done();
  }
});

test('a key that is not a homeowner setting refuses the whole request before anything is written', () => {
  const f = tmpFile(BASE);
  try {
    const before = readFileSync(f.path, 'utf8');
    assert.throws(() => applySettings(f.path, { 'vehicle.dischargeFloorPct': 55, 'uplink.url': 'mqtt://x' }), (e: unknown) => e instanceof UnknownSettingError && e.keys.join() === 'uplink.url' && /uplink\.url/.test(e.message));
    assert.throws(() => applySettings(f.path, { 'vehicle.dischargeFloorPct.x': 1 }), UnknownSettingError);
    assert.equal(readFileSync(f.path, 'utf8'), before);
  } finally {
    f.done();
  }
});

test('plainProblem: schema wording becomes words, keys become field names', () => {
  const field = (key: string) => settingFields().find((f) => f.key === key)!;
  assert.equal(plainProblem('vehicle.maxDischargeW: must be number,null', field('vehicle.maxDischargeW')), 'must be a number, or empty');
  assert.equal(plainProblem('vehicle.dischargeFloorPct: must be >= 0', field('vehicle.dischargeFloorPct')), 'must be at least 0');
  assert.match(plainProblem('vehicle.chargeStrategy: must be one of "departure", "immediate"', field('vehicle.chargeStrategy')), /just in time for departure; at once, to the target/);
});
