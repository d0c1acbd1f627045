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

/** A minimal real install (device id, inverter host) with `content` merged over it, section by section. */
function problemsOf(content: string): string[] {
  let body = content;
  try {
    const v = JSON.parse(content) as Record<string, unknown>;
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length) {
      const inverter = { modbus: { host: '10.0.0.2' }, ...(v.inverter as object | undefined) };
      body = JSON.stringify({ deviceId: 'w-1', ...v, inverter });
    }
  } catch {
    // not JSON: the loader says so
  }
  try {
    loadConfig(tmpConfig(body));
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
    // keys added with the PV forecast, the page's host names and the simulated roof
    ['forecast without a location', { site: { pvForecast: { peakW: 6000 } } }, /^site\.pvForecast\.latitudeDeg: required$/],
    ['forecast latitude out of range', { site: { pvForecast: { peakW: 6000, latitudeDeg: 123, longitudeDeg: 11 } } }, /^site\.pvForecast\.latitudeDeg: must be <= 90$/],
    ['forecast of no panels', { site: { pvForecast: { peakW: 0, latitudeDeg: 48, longitudeDeg: 11 } } }, /^site\.pvForecast\.peakW: must be > 0$/],
    ['forecast unknown key', { site: { pvForecast: { peakW: 6000, latitudeDeg: 48, longitudeDeg: 11, tilt: 30 } } }, /^site\.pvForecast\.tilt: unknown key$/],
    ['a host name with a space', { ui: { allowedHosts: ['my wallbox'] } }, /^ui\.allowedHosts\.0: must match/],
    ['host names not a list', { ui: { allowedHosts: 'wallbox.lan' } }, /^ui\.allowedHosts: must be array$/],
    ['simulated roof: latitude without longitude', { simulation: { pv: { peakW: 6000, latitudeDeg: 48 } } }, /^simulation\.pv: must have property longitudeDeg when property latitudeDeg is present$/],
  ];
  for (const [name, body, pattern] of cases) {
    test(name, () => {
      const problems = problemsOf(JSON.stringify(body));
      assert.ok(problems.some((p) => pattern.test(p)), `${JSON.stringify(problems)} does not match ${pattern}`);
    });
  }

  test('every problem is listed at once', () => {
    const problems = problemsOf(JSON.stringify({ deviceId: 'w-1', vehicle: { dischargeFloorPct: 'x', targetSocPct: 200 }, backup: { targetHours: -1 } }));
    assert.equal(problems.length, 3, JSON.stringify(problems));
  });

  test('a file that is not JSON, or not an object', () => {
    assert.match(problemsOf('{ "vehicle": ')[0], /not valid JSON/);
    assert.match(problemsOf('[1,2]')[0], /must be a JSON object/);
  });

  test('a real install must name its device and its inverter', () => {
    const problems = problemsOf('{}');
    assert.ok(problems.includes('deviceId: required'), JSON.stringify(problems));
    assert.ok(problems.some((p) => /^inverter\.modbus: needs "host"/.test(p)), JSON.stringify(problems));
  });

  test('unknown keys are refused in every section, the driver sections included', () => {
    for (const section of ['inverter', 'vehicleLink', 'uplink', 'storage', 'reward', 'simulation']) {
      const problems = problemsOf(JSON.stringify({ deviceId: 'w-1', inverter: { modbus: { host: 'h' } }, [section]: { tyop: 1 } }));
      assert.ok(problems.includes(`${section}.tyop: unknown key`), `${section}: ${JSON.stringify(problems)}`);
    }
  });

  test('a missing file is an error naming it, not the defaults', () => {
    const p = join(mkdtempSync(join(tmpdir(), 'wallbox-cfg-')), 'missing.json');
    assert.throws(() => loadConfig(p), (e: Error) => e.message.includes(p) && /ENOENT/.test(e.message));
  });

  test('the error message names the file', () => {
    const p = tmpConfig('{"vehicle":{"dischargeFloorPct":101}}');
    assert.throws(() => loadConfig(p), (e: Error) => e.message.includes(p) && e.message.includes('vehicle.dischargeFloorPct'));
  });

  test('defaults load and the local file merges over them', () => {
    const c = loadConfig(tmpConfig('{"deviceId":"w-1","inverter":{"modbus":{"host":"10.0.0.2"}},"vehicle":{"dischargeFloorPct":40},"uplink":{"groups":["north"]}}'));
    assert.equal(c.vehicle.dischargeFloorPct, 40);
    assert.equal(c.vehicle.backupFloorPct, 20);
    assert.deepEqual(c.uplink.groups, ['north']);
  });
});

describe('config set', () => {
  test('valid values are written atomically; invalid ones leave the file as it was', () => {
    const p = tmpConfig('{"deviceId":"w-1","inverter":{"modbus":{"host":"10.0.0.2"}},"vehicle":{"dischargeFloorPct":45}}\n');
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

describe('config: hostile files and values (issue 10)', () => {
  test('a config that is a symlink to /dev/zero is refused without reading it', async () => {
    const { symlinkSync } = await import('node:fs');
    const { loadConfigFile } = await import('../../src/config/load.ts');
    const dir = mkdtempSync(join(tmpdir(), 'wallbox-cfg-'));
    const p = join(dir, 'local.json');
    symlinkSync('/dev/zero', p);
    assert.throws(() => loadConfig(p), /not a regular file \(a character device\)/);
    await assert.rejects(loadConfigFile(p), /not a regular file \(a character device\)/);
  });

  test('a config larger than the cap is refused, naming its size', async () => {
    const { MAX_CONFIG_BYTES, loadConfigFile } = await import('../../src/config/load.ts');
    const p = tmpConfig(`{"deviceId":"x","pad":"${'a'.repeat(MAX_CONFIG_BYTES)}"}`);
    assert.throws(() => loadConfig(p), /file is \d+ bytes, larger than the 262144/);
    await assert.rejects(loadConfigFile(p), /larger than the 262144/);
  });

  test('a missing file is an error naming the path for the daemon loader', async () => {
    const { loadConfigFile } = await import('../../src/config/load.ts');
    const p = join(mkdtempSync(join(tmpdir(), 'wallbox-cfg-')), 'gone.json');
    await assert.rejects(loadConfigFile(p), (e: Error) => e.message.includes(p) && /ENOENT/.test(e.message));
  });

  test('__proto__, constructor and prototype keys are refused in files and never reach Object.prototype', () => {
    const problems = problemsOf('{"simulation":{"__proto__":{"polluted":1}}}');
    assert.ok(problems.some((p) => /^simulation\.__proto__: "__proto__" is not allowed as a key$/.test(p)), JSON.stringify(problems));
    assert.ok(problemsOf('{"vehicle":{"constructor":{"x":1}}}').some((p) => /vehicle\.constructor/.test(p)));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('config set: a key through __proto__ is refused and Object.prototype stays clean', () => {
    const p = tmpConfig('{}\n');
    assert.throws(() => setLocalKey(p, 'simulation.__proto__.polluted', 1), /"__proto__" is not allowed as a key/);
    assert.throws(() => setLocalKey(p, 'constructor.prototype.polluted', 1), /not allowed as a key/);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(readFileSync(p, 'utf8'), '{}\n');
  });

  test('1e400 and other non-finite numbers are refused, not written as null', async () => {
    const { parseConfigValue } = await import('../../src/config/load.ts');
    assert.throws(() => parseConfigValue('1e400'), /\(value\): must be a finite number/);
    assert.throws(() => parseConfigValue('-1e400'), /must be a finite number/);
    // raw text: a JSON round trip here would turn Infinity into null before the loader sees it
    assert.throws(() => loadConfig(tmpConfig('{"deviceId":"w-1","vehicle":{"dischargeFloorPct":1e400}}')), /vehicle\.dischargeFloorPct: must be a finite number/);
  });

  test('overlong strings are refused naming the key (a 70,000-character user name, a 120,000-character host)', async () => {
    const { parseConfigValue } = await import('../../src/config/load.ts');
    const p = tmpConfig('{}\n');
    assert.throws(() => setLocalKey(p, 'uplink.username', parseConfigValue('u'.repeat(70_000))), /uplink\.username: longer than/);
    assert.throws(() => setLocalKey(p, 'inverter.modbus.host', parseConfigValue('h'.repeat(120_000))), /inverter\.modbus\.host: longer than/);
    assert.equal(readFileSync(p, 'utf8'), '{}\n');
  });
});
