/**
 * The quick-action API (src/homeowner/overrides.ts) and the settings API (src/homeowner/settings.ts) on
 * real files: end times as a person types them, in the configured zone (expected instants worked out here
 * from Europe/Paris's known offsets: UTC+1 in winter, UTC+2 from 2026-03-29 02:00 local); durable,
 * validated, atomic writes that leave the file unchanged on any refusal; ended overrides dropped.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { clearOverride, defaultUntilMs, listOverrides, OverrideError, parseUntil, setOverride } from '../../src/homeowner/overrides.ts';
import { changeSettings, SettingsError } from '../../src/homeowner/settings.ts';

const PARIS = 'Europe/Paris';
const HOUR = 3_600_000;
/** Tuesday 2026-12-01, 11:00 in Paris (10:00 UTC). */
const NOW = Date.parse('2026-12-01T10:00:00Z');

function file(t: { after: (fn: () => void) => void }, content: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-ov-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const p = join(dir, 'local.json');
  writeFileSync(p, JSON.stringify({ deviceId: 'ov-test', timezone: PARIS, storage: { path: join(dir, 'db') }, inverter: { driver: 'sim' }, vehicleLink: { driver: 'sim' }, ...content }, null, 2));
  return p;
}

describe('parseUntil: end times as typed, in the configured zone', () => {
  const cases: [string, string][] = [
    ['07:00', '2026-12-02T06:00:00Z'], // the next 07:00 is tomorrow's
    ['12:30', '2026-12-01T11:30:00Z'], // later today
    ['7:05', '2026-12-02T06:05:00Z'],
    ['tomorrow', '2026-12-01T23:00:00Z'],
    ['friday', '2026-12-03T23:00:00Z'],
    ['Fri', '2026-12-03T23:00:00Z'],
    ['tuesday', '2026-12-07T23:00:00Z'], // today is Tuesday: the next one is a week away
    ['2026-12-24', '2026-12-23T23:00:00Z'],
    ['2026-12-24 07:00', '2026-12-24T06:00:00Z'],
    ['2026-12-24T07:00', '2026-12-24T06:00:00Z'],
    ['2026-12-02T07:00:00+01:00', '2026-12-02T06:00:00Z'],
  ];
  for (const [text, iso] of cases) test(`"${text}"`, () => assert.equal(parseUntil(text, NOW, PARIS), Date.parse(iso)));

  test('durations count from now', () => {
    assert.equal(parseUntil('4h', NOW, PARIS), NOW + 4 * HOUR);
    assert.equal(parseUntil('90m', NOW, PARIS), NOW + 90 * 60_000);
    assert.equal(parseUntil('2d', NOW, PARIS), NOW + 48 * HOUR);
    assert.equal(parseUntil('1.5 hours', NOW, PARIS), NOW + 1.5 * HOUR);
  });

  test('across a daylight-saving change: "07:00" is 07:00 on the wall clock', () => {
    // Saturday 2026-03-28 13:00 CET; the clocks go forward that night: Sunday 07:00 is CEST (UTC+2)
    const sat = Date.parse('2026-03-28T12:00:00Z');
    assert.equal(parseUntil('07:00', sat, PARIS), Date.parse('2026-03-29T05:00:00Z'));
    assert.equal(parseUntil('tomorrow', sat, PARIS), Date.parse('2026-03-28T23:00:00Z'));
  });

  test('refusals say what was given and what is accepted', () => {
    for (const [text, words] of [
      ['yesterday', /"yesterday" is not an end time: give a time like 07:00/],
      ['25:00', /"25:00" is not an end time/],
      ['2026-02-30', /"2026-02-30" is not an end time/],
      ['2026-11-30', /has already passed/],
      ['40d', /more than 31 days away/],
      ['0h', /not an end time/],
    ] as const)
      assert.throws(() => parseUntil(text, NOW, PARIS), (e: unknown) => e instanceof OverrideError && words.test(e.message), text);
  });
});

describe('setOverride / clearOverride / listOverrides', () => {
  test('a boost is written durably with its instant, the rest of the file kept, and listed with a local end', (t) => {
    const p = file(t, { vehicle: { departureTime: '06:45', targetSocPct: 85 } });
    const config = loadConfig(p);
    const r = setOverride(p, { kind: 'boost', until: '07:00' }, { nowMs: NOW, by: 'cli', config });
    const f = JSON.parse(readFileSync(p, 'utf8'));
    assert.equal(f.vehicle.departureTime, '06:45', 'the other settings are kept');
    assert.deepEqual(f.overrides.boost, { targetSocPct: 85, until: '2026-12-02T06:00:00Z', setAt: '2026-12-01T10:00:00Z', by: 'cli' });
    assert.equal(r.view.untilLocal, '2026-12-02 07:00');
    assert.equal(r.view.label, 'charge now to 85 %');
    // the daemon's loader reads what was written
    assert.equal(loadConfig(p).overrides?.boost?.targetSocPct, 85);
  });

  test('without an end: the next departure (local), else 12 hours', (t) => {
    const p = file(t, { vehicle: { departureTime: '06:45' } });
    assert.equal(defaultUntilMs(loadConfig(p), NOW), Date.parse('2026-12-02T05:45:00Z'));
    const q = file(t, { vehicle: { departureTime: null } });
    assert.equal(defaultUntilMs(loadConfig(q), NOW), NOW + 12 * HOUR);
  });

  test('a refusal leaves the file byte for byte as it was', (t) => {
    const p = file(t);
    const config = loadConfig(p);
    const before = readFileSync(p, 'utf8');
    assert.throws(() => setOverride(p, { kind: 'pauseV2g', until: 'yesterday' }, { nowMs: NOW, by: 'cli', config }), OverrideError);
    assert.throws(() => setOverride(p, { kind: 'backupReserve', socPct: 101 }, { nowMs: NOW, by: 'ui', config }), /backup reserve must be a percentage from 1 to 100; you gave 101/);
    assert.throws(() => setOverride(p, { kind: 'boost', until: NOW - 1 }, { nowMs: NOW, by: 'ui', config }), OverrideError);
    assert.equal(readFileSync(p, 'utf8'), before);
    // a file broken in another key is not written either (the merged result is validated whole)
    writeFileSync(p, JSON.stringify({ ...JSON.parse(before), vehicle: { departureTime: '7:30' } }));
    const broken = readFileSync(p, 'utf8');
    assert.throws(() => setOverride(p, { kind: 'pauseV2g', until: '4h' }, { nowMs: NOW, by: 'cli', config }), ConfigError);
    assert.equal(readFileSync(p, 'utf8'), broken);
  });

  test('ended overrides are not listed and are dropped at the next write; clear ends one now', (t) => {
    const p = file(t);
    const config = loadConfig(p);
    setOverride(p, { kind: 'pauseV2g', until: '1h' }, { nowMs: NOW, by: 'cli', config });
    setOverride(p, { kind: 'backupReserve', socPct: 70, until: '4h' }, { nowMs: NOW, by: 'homeassistant', config });
    const later = NOW + 2 * HOUR;
    assert.deepEqual(listOverrides(loadConfig(p), later).map((o) => o.kind), ['backupReserve']);
    setOverride(p, { kind: 'boost', targetSocPct: 90, until: '1h' }, { nowMs: later, by: 'ui', config });
    const f = JSON.parse(readFileSync(p, 'utf8'));
    assert.equal(f.overrides.pauseV2g, null, 'the ended pause is gone');
    assert.equal(f.overrides.backupReserve.socPct, 70);
    clearOverride(p, 'backupReserve', { nowMs: later });
    assert.deepEqual(listOverrides(loadConfig(p), later).map((o) => o.kind), ['boost']);
    assert.throws(() => clearOverride(p, 'nothing' as never, { nowMs: later }), /unknown quick action/);
  });
});

describe('changeSettings (config set, the page, Home Assistant)', () => {
  test('merges an object into its section; all or nothing; homeowner keys only when asked', (t) => {
    const p = file(t, { vehicle: { departureTime: '06:45' } });
    const r = changeSettings(p, [{ key: 'vehicle', value: { dischargeFloorPct: 60 } }]);
    assert.deepEqual(r.changed, ['vehicle.dischargeFloorPct']);
    assert.equal(JSON.parse(readFileSync(p, 'utf8')).vehicle.departureTime, '06:45');

    const before = readFileSync(p, 'utf8');
    assert.throws(
      () => changeSettings(p, [{ key: 'vehicle.targetSocPct', value: 90 }, { key: 'vehicle.departureTime', value: '25:00' }]),
      (e: unknown) => e instanceof SettingsError && e.problems.length === 1 && e.problems[0].key === 'vehicle.departureTime' && /a time like 07:30.*you gave "25:00"/.test(e.problems[0].message),
    );
    assert.equal(readFileSync(p, 'utf8'), before, 'the valid change of the pair was not written either');

    assert.throws(() => changeSettings(p, [{ key: 'inverter.timeoutMs', value: 900 }], { homeownerOnly: true }), /inverter\.timeoutMs: is not a setting that can be changed here/);
    assert.throws(() => changeSettings(p, [{ key: 'vehicle.__proto__', value: 1 }]), SettingsError);
    assert.equal(readFileSync(p, 'utf8'), before);
  });
});
