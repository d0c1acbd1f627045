/** What a reload applies and what it names as needing a restart (src/config/reload.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config/load.ts';
import { changedKeys, classifyChanges, effectiveConfig } from '../../src/config/reload.ts';
import type { Config } from '../../src/config/types.ts';

const base = loadConfig(null, { uplink: { url: 'mqtt://127.0.0.1:1883' } });
const withChanges = (extra: object): Config => loadConfig(null, { uplink: { url: 'mqtt://127.0.0.1:1883' }, ...extra });

test('changed keys are the leaves that differ, arrays whole', () => {
  const next = withChanges({ vehicle: { dischargeFloorPct: 61 }, uplink: { url: 'mqtt://127.0.0.1:1883', groups: ['a'] } });
  assert.deepEqual(changedKeys(base, next), ['uplink.groups', 'vehicle.dischargeFloorPct']);
  assert.deepEqual(changedKeys(base, base), []);
});

test('drivers, storage, device id and time zone need a restart; homeowner and control keys apply live', () => {
  const next = withChanges({ deviceId: 'other', timezone: 'Europe/Paris', inverter: { timeoutMs: 900 }, storage: { retentionDays: 100 }, vehicle: { targetSocPct: 90 }, control: { tickS: 2 } });
  const { live, restart } = classifyChanges(changedKeys(base, next), base, { uplinkRunning: true, rewardLive: false });
  assert.deepEqual(live.sort(), ['control.tickS', 'vehicle.targetSocPct']);
  assert.deepEqual(restart.sort(), ['deviceId', 'inverter.timeoutMs', 'storage.retentionDays', 'timezone']);
});

test('reward applies live only when the store can take it; uplink.url from null needs a restart', () => {
  const next = withChanges({ reward: { ratePerKWh: 0.3 } });
  assert.deepEqual(classifyChanges(['reward.ratePerKWh'], base, { uplinkRunning: true, rewardLive: true }).live, ['reward.ratePerKWh']);
  assert.deepEqual(classifyChanges(['reward.ratePerKWh'], base, { uplinkRunning: true, rewardLive: false }).restart, ['reward.ratePerKWh']);
  void next;
  const offline = loadConfig(null, { uplink: { url: null } });
  assert.deepEqual(classifyChanges(['uplink.url'], offline, { uplinkRunning: false, rewardLive: true }).restart, ['uplink.url']);
  assert.deepEqual(classifyChanges(['uplink.prefix'], base, { uplinkRunning: true, rewardLive: true }).restart, ['uplink.prefix']);
});

test('the running config keeps the old value of every key that needs a restart, the new value of the rest', () => {
  const next = withChanges({ inverter: { timeoutMs: 900 }, vehicle: { targetSocPct: 90 } });
  const eff = effectiveConfig(base, next, ['inverter.timeoutMs']);
  assert.equal(eff.inverter.timeoutMs, base.inverter.timeoutMs);
  assert.equal(eff.vehicle.targetSocPct, 90);
  assert.deepEqual(changedKeys(eff, next), ['inverter.timeoutMs'], 'a later reload names it again until the restart');
});
