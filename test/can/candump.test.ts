/** candump log lines: read, written, and refused with the reason. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatCandumpLine, parseCandump, parseCandumpLine } from '../../hal/inverter/can/candump.ts';

describe('candump log format', () => {
  it('reads "(1700000000.123456) can0 356#7A13F2FE6B01"', () => {
    const lf = parseCandumpLine('(1700000000.123456) can0 356#7A13F2FE6B01');
    assert.equal(lf.timeUs, 1700000000123456);
    assert.equal(lf.iface, 'can0');
    assert.equal(lf.frame.id, 0x356);
    assert.equal(lf.frame.extended, false);
    assert.deepEqual([...lf.frame.data], [0x7a, 0x13, 0xf2, 0xfe, 0x6b, 0x01]);
  });

  it('reads 29-bit ids, remote frames, empty data and dotted data', () => {
    assert.equal(parseCandumpLine('(1.000001) vcan0 1ABCDEF0#00').frame.extended, true);
    assert.equal(parseCandumpLine('(1.000001) vcan0 1ABCDEF0#00').frame.id, 0x1abcdef0);
    assert.equal(parseCandumpLine('(1.5) can0 305#R').frame.rtr, true);
    assert.equal(parseCandumpLine('(1.5) can0 305#').frame.data.length, 0);
    assert.deepEqual([...parseCandumpLine('(1.5) can0 305#01.02.03').frame.data], [1, 2, 3]);
  });

  it('writes what it reads, to the microsecond', () => {
    const line = '(1700000000.000042) can0 351#2802CC0100000000';
    const lf = parseCandumpLine(line);
    assert.equal(formatCandumpLine(lf.frame, lf.iface, lf.timeUs / 1000), line);
    assert.equal(formatCandumpLine({ id: 0x1abcdef0, extended: true, data: new Uint8Array([0xab]) }, 'can1', 1500), '(1.500000) can1 1ABCDEF0#AB');
    assert.equal(formatCandumpLine({ id: 0x305, rtr: true, data: new Uint8Array(0) }, 'can0', 2000), '(2.000000) can0 305#R');
  });

  it('a damaged line is reported with its number and reason, the rest of the log is kept', () => {
    const log = [
      '# capture from the garage',
      '(1700000000.100000) can0 305#0000000000000000',
      '(1700000000.200000) can0 356#7A13F2FE6B0',
      '(1700000000.300000) can0 356##17A13',
      '(1700000000.400000) can0 3561#00',
      '(1700000000.500000) can0 356#000102030405060708',
      'garbage',
      '',
      '(1700000000.600000) can0 800#00',
      '(1700000000.700000) can0 307#0000000056494300',
    ].join('\n');
    const p = parseCandump(log);
    assert.deepEqual(p.frames.map((f) => f.frame.id), [0x305, 0x307]);
    assert.deepEqual(
      p.errors.map((e) => [e.lineNo, e.reason.split(' ')[0]]),
      [[3, 'data'], [4, 'a'], [5, 'id'], [6, '9'], [7, 'not'], [9, 'id']],
    );
    assert.match(p.errors[1].reason, /CAN FD/);
    assert.match(p.errors[3].reason, /at most 8/);
  });
});
