/**
 * The page's settings go through changeSettings (the code behind `wallbox config set`): a valid change is
 * written and keeps the rest of the file; a refused one leaves the file byte for byte and says why in the
 * homeowner's words next to its field, other keys named by their field labels; keys that depend on each
 * other go through together whatever their order; only homeowner keys can be changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { applySettings, fieldMessage, settingFields, UnknownSettingError, type ApplyResult } from '../../src/ui/settings.ts';

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

const refused = (r: ApplyResult) => {
  assert.equal(r.ok, false, JSON.stringify(r));
  return (r as { fields: Record<string, string> }).fields;
};

test('a valid change is written, the rest of the section kept, and the merged config loads', () => {
  const f = tmpFile(BASE);
  try {
    const r = applySettings(f.path, { 'vehicle.dischargeFloorPct': 60 });
    assert.equal(r.ok, true);
    assert.deepEqual((r as { changed: string[] }).changed, ['vehicle.dischargeFloorPct']);
    const cfg = loadConfig(f.path);
    assert.equal(cfg.vehicle.dischargeFloorPct, 60);
    assert.equal(cfg.vehicle.departureTime, '06:45', 'the departure time set before is kept');
  } finally {
    f.done();
  }
});

test('refusals leave the file byte for byte and speak the homeowner\'s words, field by field', () => {
  const f = tmpFile(BASE);
  try {
    const before = readFileSync(f.path, 'utf8');
    const fields = refused(applySettings(f.path, { 'vehicle.departureTime': '7h30', 'vehicle.targetSocPct': 140, 'vehicle.backupFloorPct': 70, 'vehicle.v2gEnabled': 'yes' }));
    assert.equal(readFileSync(f.path, 'utf8'), before);
    assert.match(fields['vehicle.departureTime'], /must be a time like 07:30/);
    assert.match(fields['vehicle.departureTime'], /"7h30"/, 'the value given is named');
    assert.match(fields['vehicle.targetSocPct'], /must be at most 100/);
    assert.match(fields['vehicle.v2gEnabled'], /true or false/);
    for (const k of Object.keys(fields)) assert.doesNotMatch(fields[k], /\^|\[0-9\]|vehicle\./, `${k}: no regex and no dotted keys shown: ${fields[k]}`);
    // a cross-key rule names the other setting by its label
    const cross = refused(applySettings(f.path, { 'vehicle.backupFloorPct': 70 }));
    assert.equal(cross['vehicle.backupFloorPct'], 'must not exceed the discharge floor (70 > 50)');
    assert.equal(readFileSync(f.path, 'utf8'), before);
  } finally {
    f.done();
  }
});

test('keys that depend on each other go through together in any order; one refusal saves nothing', () => {
  const f = tmpFile(BASE);
  try {
    // the backup floor 65 is only valid with the discharge floor 70 sent in the same change
    const r = applySettings(f.path, { 'vehicle.backupFloorPct': 65, 'vehicle.dischargeFloorPct': 70, 'vehicle.departureTime': null });
    assert.equal(r.ok, true, JSON.stringify(r));
    const cfg = loadConfig(f.path);
    assert.equal(cfg.vehicle.backupFloorPct, 65);
    assert.equal(cfg.vehicle.dischargeFloorPct, 70);
    assert.equal(cfg.vehicle.departureTime, null);
    const before = readFileSync(f.path, 'utf8');
    const fields = refused(applySettings(f.path, { 'vehicle.dischargeFloorPct': 80, 'backup.targetHours': -3 }));
    assert.deepEqual(Object.keys(fields), ['backup.targetHours']);
    assert.match(fields['backup.targetHours'], /at least 0/);
    assert.equal(readFileSync(f.path, 'utf8'), before, 'all or nothing: the good value waits for the bad one to be fixed');
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

test('fieldMessage: other settings named by their labels', () => {
  assert.equal(fieldMessage('must not be below vehicle.backupFloorPct (10 < 20)'), 'must not be below the backup floor (10 < 20)');
});
