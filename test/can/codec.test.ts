/**
 * Byte-exact frames of every profile. Expected bytes are worked out by hand from the protocol table
 * (docs/can.md): value / scale as a 16-bit two's-complement integer, low byte first unless the profile is BE.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, encodeFrame, type DecodedFrame, type FrameIssue } from '../../hal/inverter/can/codec.ts';
import { PROFILES, resolveProfile } from '../../hal/inverter/can/profiles.ts';
import { bmsValues, limitsFor } from '../../hal/inverter/can/bms-values.ts';
import { PACK } from './harness.ts';

const hex = (s: string) => Uint8Array.from(s.split(' ').filter(Boolean).map((b) => parseInt(b, 16)));
const bytes = (u: Uint8Array) => [...u].map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join(' ');
const ok = (d: DecodedFrame | FrameIssue): DecodedFrame => {
  assert.equal(d.ok, true, d.ok ? '' : (d as FrameIssue).message);
  return d as DecodedFrame;
};
const v13 = PROFILES['pylontech-1.3'];
const v12 = PROFILES['pylontech-1.2'];

describe('CAN codec: the digest capture', () => {
  it('356: 7A 13 F2 FE 6B 01 is 49.86 V, -27.0 A, 36.3 °C, and encodes back to the same bytes', () => {
    const d = ok(decodeFrame({ id: 0x356, data: hex('7A 13 F2 FE 6B 01') }, v13));
    assert.deepEqual(d.fields, [
      { name: 'voltageV', value: 49.86, unit: 'V' },
      { name: 'currentA', value: -27, unit: 'A' },
      { name: 'temperatureC', value: 36.3, unit: '°C' },
    ]);
    assert.equal(bytes(encodeFrame(0x356, { voltageV: 49.86, currentA: -27, temperatureC: 36.3 }, v13)), '7A 13 F2 FE 6B 01');
  });
});

describe('CAN codec: every BMS frame, byte for byte', () => {
  it('0x351 limits: 55.2 V, 55.6 A, 41.1 A, 46.0 V (LE, and BE when the profile says so)', () => {
    const v = { chargeVoltageLimitV: 55.2, chargeCurrentLimitA: 55.6, dischargeCurrentLimitA: 41.1, dischargeVoltageLimitV: 46 };
    // 552 = 0x0228, 556 = 0x022C, 411 = 0x019B, 460 = 0x01CC
    assert.equal(bytes(encodeFrame(0x351, v, v13)), '28 02 2C 02 9B 01 CC 01');
    assert.equal(bytes(encodeFrame(0x351, v, resolveProfile('sma', { byteOrder: 'be' }))), '02 28 02 2C 01 9B 01 CC');
    const d = ok(decodeFrame({ id: 0x351, data: hex('28 02 2C 02 9B 01 CC 01') }, v13));
    assert.deepEqual(d.values, v);
  });

  it('0x355: v1.2 sends 4 bytes (SoC, SoH), v1.3 and SMA 6 (plus SoC in 0.01 %)', () => {
    const v = { socPct: 70, sohPct: 98, socHiResPct: 70.25 };
    assert.equal(bytes(encodeFrame(0x355, v, v12)), '46 00 62 00');
    // 7025 = 0x1B71
    assert.equal(bytes(encodeFrame(0x355, v, v13)), '46 00 62 00 71 1B');
    assert.equal(bytes(encodeFrame(0x355, v, PROFILES.sma)), '46 00 62 00 71 1B');
  });

  it('0x359 (v1.2): protections, warnings, module count and "PN"', () => {
    const b = encodeFrame(0x359, { warningInternalCommFail: true, protectionOverVoltage: true, warningChargeHighCurrent: true, moduleCount: 1, marker: 'PN' }, v12);
    // byte 0 b1 over-voltage = 0x02; byte 3 b0 charge high current + b3 comm fail = 0x09; 'P' 0x50 'N' 0x4E
    assert.equal(bytes(b), '02 00 00 09 01 50 4E 00');
  });

  it('0x35A: every item a 2-bit code, 1 = active and 2 = OK (diyBMS), or swapped; unknown bits 0', () => {
    const inp = { commandW: 0, gridForming: false, efficiency: 0.95, socPct: 70, alarms: new Set<never>(), warnings: new Set(['bmsInternal'] as const), forceChargeRequest: false };
    const d = encodeFrame(0x35a, bmsValues(inp, PACK, v13), v13);
    // alarms all OK: 2|2<<2|2<<4|2<<6 = 0xAA; byte 3 only cell imbalance (b0-1) = 0x02
    // warnings: byte 6 has bmsInternal (b6-7) active = 0x40 + three OK = 0x2A; byte 7 imbalance OK 0x02 + online (b2-3) active 0x04
    assert.equal(bytes(d), 'AA AA AA 02 AA AA 6A 06');
    const swapped = resolveProfile('pylontech-1.3', { alarmCodes: 'swapped' });
    assert.equal(bytes(encodeFrame(0x35a, bmsValues(inp, PACK, swapped), swapped)), '55 55 55 01 55 55 95 09');
    const back = ok(decodeFrame({ id: 0x35a, data: hex('AA AA AA 02 AA AA 6A 06') }, v13));
    assert.equal(back.values['warning.bmsInternal'], 'active');
    assert.equal(back.values['alarm.bmsInternal'], 'ok');
    assert.equal(back.values['warning.general'], 'ok');
    assert.equal(back.values.online, 'active');
    // bits 4-7 of byte 3 are not items: 0 reads as not supported, never as OK
    assert.equal(ok(decodeFrame({ id: 0x35a, data: hex('00 00 00 00 00 00 00 00') }, v13)).values['alarm.general'], 'unsupported');
  });

  it('0x35C (v1.2): b7 charge enable, b6 discharge enable, b5 force charge I', () => {
    assert.equal(bytes(encodeFrame(0x35c, { chargeEnable: true, dischargeEnable: true }, v12)), 'C0 00');
    assert.equal(bytes(encodeFrame(0x35c, { chargeEnable: true, forceChargeI: true }, v12)), 'A0 00');
    assert.equal(bytes(encodeFrame(0x35c, {}, v12)), '00 00');
  });

  it('0x35E: the manufacturer in ASCII, padded with spaces to 8 bytes', () => {
    assert.equal(bytes(encodeFrame(0x35e, { manufacturer: 'PYLON' }, v13)), '50 59 4C 4F 4E 20 20 20');
    assert.equal(ok(decodeFrame({ id: 0x35e, data: hex('50 59 4C 4F 4E 20 20 20') }, v13)).values.manufacturer, 'PYLON');
  });

  it('0x35F: battery type, BMS version, capacity in Ah (1000 Ah = 0x03E8)', () => {
    assert.equal(bytes(encodeFrame(0x35f, { batteryType: 0x4c69, bmsVersion: 0x0102, capacityAh: 1000 }, v13)), '69 4C 02 01 E8 03 00 00');
  });

  it('values beyond a field are clamped, never wrapped into the other sign', () => {
    assert.equal(bytes(encodeFrame(0x351, { chargeVoltageLimitV: 55.2, chargeCurrentLimitA: 5000, dischargeCurrentLimitA: -3, dischargeVoltageLimitV: 46 }, v13)), '28 02 FF 7F 00 00 CC 01');
    assert.throws(() => encodeFrame(0x351, { chargeCurrentLimitA: NaN }, v13), /finite/);
  });
});

describe('CAN codec: the inverter frames', () => {
  it('0x305 from a Sunny Island: DC voltage 0.1 V, current s16 0.1 A (SMA profile); zeros elsewhere carry nothing', () => {
    // 51.2 V = 512 = 0x0200; -20.0 A = -200 = 0xFF38
    const d = ok(decodeFrame({ id: 0x305, data: hex('00 02 38 FF 00 00 00 00') }, PROFILES.sma));
    assert.deepEqual(d.values, { dcVoltageV: 51.2, dcCurrentA: -20 });
    assert.deepEqual(ok(decodeFrame({ id: 0x305, data: new Uint8Array(8) }, v13)).fields, []);
  });

  it('0x307: the inverter id, bytes 4-6 "VIC" from a Victron', () => {
    assert.equal(ok(decodeFrame({ id: 0x307, data: hex('12 34 56 78 56 49 43 00') }, v13)).values.vendor, 'VIC');
  });
});

describe('CAN codec: garbage is an issue, never an exception', () => {
  const cases: [string, Parameters<typeof decodeFrame>[0], string][] = [
    ['wrong DLC', { id: 0x356, data: hex('7A 13 F2') }, 'wrong_dlc'],
    ['unknown id', { id: 0x123, data: hex('00') }, 'unknown_id'],
    ['SoC 101 %', { id: 0x355, data: hex('65 00 62 00') }, 'out_of_range'],
    ['temperature -300 °C', { id: 0x356, data: hex('7A 13 F2 FE 48 F4') }, 'out_of_range'],
    ['a 29-bit id', { id: 0x351, extended: true, data: new Uint8Array(8) }, 'extended'],
    ['a remote frame', { id: 0x305, rtr: true, data: new Uint8Array(0) }, 'remote'],
    ['a keepalive of 3 bytes', { id: 0x305, data: hex('00 00 00') }, 'wrong_dlc'],
  ];
  for (const [what, frame, code] of cases) {
    it(`${what} → ${code}`, () => {
      const d = decodeFrame(frame, v13);
      assert.equal(d.ok, false);
      assert.equal((d as FrameIssue).code, code);
      assert.ok((d as FrameIssue).message.includes(`0x${frame.id.toString(16).toUpperCase()}`));
    });
  }
});

describe('CAN codec: each profile round-trips its whole frame set', () => {
  for (const p of Object.values(PROFILES)) {
    it(p.name, () => {
      const inp = { commandW: -3000, gridForming: false, efficiency: 0.95, socPct: 63.5, currentIntoCarA: -12.3, alarms: new Set<never>(), warnings: new Set<never>(), forceChargeRequest: false };
      const values = bmsValues(inp, PACK, p);
      for (const id of p.frames) {
        const data = encodeFrame(id, values, p);
        assert.equal(data.length, p.dlc[id], `DLC of 0x${id.toString(16)}`);
        const d = ok(decodeFrame({ id, data }, p));
        for (const f of d.fields) {
          const sent = values[f.name];
          if (typeof sent === 'boolean') assert.equal(f.value, f.name.includes('.') || f.name === 'online' ? (sent ? 'active' : 'ok') : sent, f.name);
          else if (typeof sent === 'number') assert.ok(Math.abs((f.value as number) - sent) < 0.051, `${f.name}: ${f.value} vs ${sent}`);
          else assert.equal(f.value, sent, f.name);
        }
      }
      // -3000 W AC out of the car: 3000 / 0.95 / 51.2 V = 61.67 A, advertised rounded down to 61.6 A
      assert.deepEqual(limitsFor(inp, PACK), { chargeCurrentLimitA: 0, dischargeCurrentLimitA: 61.6, chargeEnable: false, dischargeEnable: true });
    });
  }
});
