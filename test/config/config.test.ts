import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, setLocalKey } from '../../src/config/load.ts';

function tmpConfig(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-cfg-'));
  const p = join(dir, 'local.json');
  writeFileSync(p, content);
  return p;
}

function problemsOf(content: string): string[] {
  try {
    loadConfig(tmpConfig(content));
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  assert.fail('config was accepted');
}

describe('config: every rule rejected with its key named', () => {
  const cases: [string, unknown, RegExp][] = [
    ['unknown key', { vehicle: { dischargeFloor: 40 } }, /^vehicle\.dischargeFloor: unknown key$/],
    ['unknown top-level key', { vehicel: {} }, /^vehicel: unknown key$/],
    ['above 100 %', { vehicle: { dischargeFloorPct: 150 } }, /^vehicle\.dischargeFloorPct: must be <= 100$/],
    ['negative', { vehicle: { targetSocPct: -1 } }, /^vehicle\.targetSocPct: must be >= 0$/],
    ['wrong type', { vehicle: { v2gEnabled: 'yes' } }, /^vehicle\.v2gEnabled: must be boolean$/],
    ['departure format', { vehicle: { departureTime: '7:30' } }, /^vehicle\.departureTime: must match/],
    ['backup floor above discharge floor', { vehicle: { dischargeFloorPct: 30, backupFloorPct: 40 } }, /^vehicle\.backupFloorPct: must not exceed vehicle\.dischargeFloorPct/],
    ['bad time zone', { timezone: 'Mars/Olympus' }, /^timezone: "Mars\/Olympus" is not an IANA time zone$/],
    ['bad broker URL', { uplink: { url: 'http://example' } }, /^uplink\.url: must be mqtt/],
    ['unknown driver', { inverter: { driver: 'magic' } }, /^inverter\.driver: must be one of/],
    ['bad device id', { deviceId: 'a/b' }, /^deviceId: must match/],
    ['strategy', { vehicle: { chargeStrategy: 'asap' } }, /^vehicle\.chargeStrategy: must be one of "departure", "immediate"$/],
    ['tick', { control: { tickS: 0 } }, /^control\.tickS: must be >= 0\.1$/],
  ];
  for (const [name, body, pattern] of cases) {
    test(name, () => {
      const problems = problemsOf(JSON.stringify(body));
      assert.ok(problems.some((p) => pattern.test(p)), `${JSON.stringify(problems)} does not match ${pattern}`);
    });
  }

  test('every problem is listed at once', () => {
    const problems = problemsOf(JSON.stringify({ vehicle: { dischargeFloorPct: 'x', targetSocPct: 200 }, backup: { targetHours: -1 } }));
    assert.equal(problems.length, 3, JSON.stringify(problems));
  });

  test('a file that is not JSON, or not an object', () => {
    assert.match(problemsOf('{ "vehicle": ')[0], /not valid JSON/);
    assert.match(problemsOf('[1,2]')[0], /must be a JSON object/);
  });

  test('the error message names the file', () => {
    const p = tmpConfig('{"vehicle":{"dischargeFloorPct":101}}');
    assert.throws(() => loadConfig(p), (e: Error) => e.message.includes(p) && e.message.includes('vehicle.dischargeFloorPct'));
  });

  test('defaults load and the local file merges over them', () => {
    const c = loadConfig(tmpConfig('{"vehicle":{"dischargeFloorPct":40},"uplink":{"groups":["north"]}}'));
    assert.equal(c.vehicle.dischargeFloorPct, 40);
    assert.equal(c.vehicle.backupFloorPct, 20);
    assert.deepEqual(c.uplink.groups, ['north']);
  });
});

describe('config set', () => {
  test('valid values are written atomically; invalid ones leave the file as it was', () => {
    const p = tmpConfig('{"vehicle":{"dischargeFloorPct":45}}\n');
    setLocalKey(p, 'vehicle.targetSocPct', 90);
    assert.equal(JSON.parse(readFileSync(p, 'utf8')).vehicle.targetSocPct, 90);
    const before = readFileSync(p, 'utf8');
    assert.throws(() => setLocalKey(p, 'vehicle.backupFloorPct', 60), /vehicle\.backupFloorPct: must not exceed/);
    assert.throws(() => setLocalKey(p, 'vehicle.nonsense', 1), /vehicle\.nonsense: unknown key/);
    assert.equal(readFileSync(p, 'utf8'), before);
    assert.ok(!existsSync(`${p}.tmp-${process.pid}`));
  });
});

describe('shipped config files', () => {
  test('config/example-install.json is a valid config for a real install', async () => {
    const { PROJECT_ROOT } = await import('../../src/config/load.ts');
    const c = loadConfig(join(PROJECT_ROOT, 'config/example-install.json'));
    assert.equal(c.inverter.driver, 'sunspec');
    assert.equal(c.gpio.driver, 'onoff');
    assert.equal(c.vehicleLink.driver, 'everest');
  });
});
