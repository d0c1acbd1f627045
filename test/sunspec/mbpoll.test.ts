/**
 * The simulated SunSpec server read and written by an independent Modbus client (Debian's mbpoll), so the
 * simulator is not only checked by our own client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { decodeRaw } from '../../hal/inverter/sunspec/codec.ts';
import { rig } from './harness.ts';

const MBPOLL = '/usr/bin/mbpoll';
const skip = existsSync(MBPOLL) ? false : `mbpoll is not installed at ${MBPOLL} (Debian package "mbpoll"; CI installs it)`;

function mbpoll(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(MBPOLL, args, { timeout: 10000 }, (err, stdout, stderr) => (err ? reject(new Error(`mbpoll ${args.join(' ')}: ${err.message} ${stderr}`)) : resolve(stdout)));
  });
}

/** `[40001]: \t21365` lines -> {40001: 21365}; signed 16-bit values print as `62536 (-3000)`. */
function parse(out: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const line of out.split('\n')) {
    const x = /^\[(\d+)\]:\s+(-?\d+)/.exec(line.trim());
    if (x) m.set(Number(x[1]), Number(x[2]));
  }
  return m;
}

test('mbpoll reads the SunS marker, the model chain and live values, and its writes command the inverter', { skip }, async () => {
  const r = await rig({ clock: new VirtualClock(Date.UTC(2026, 0, 15, 12)) });
  const common = ['-m', 'tcp', '-p', String(r.port), '-a', '1', '-1', '-o', '2'];
  try {
    // -r is 1-based (Modicon numbering): register 40001 is PDU address 40000
    const hdr = parse(await mbpoll([...common, '-r', '40001', '-c', '4', '127.0.0.1']));
    assert.deepEqual([...hdr.values()], [0x5375, 0x6e53, 1, 66]);

    // end of the chain: ID 0xFFFF at 40353 (PDU)
    const end = parse(await mbpoll([...common, '-0', '-r', '40353', '-c', '2', '127.0.0.1']));
    assert.deepEqual([...end.values()], [0xffff, 0]);

    r.inverter.acPowerW = 3000; // charging 3 kW: 701 W reads -3000
    const wAddr = r.server.addressOf(701, 'W');
    const w = parse(await mbpoll([...common, '-0', '-r', String(wAddr), '-c', '1', '127.0.0.1']));
    assert.equal(decodeRaw('int16', [w.get(wAddr)!]), -3000);

    // enable WSet in WATTS mode, then WSet = +2000.0 W (generate, i.e. discharge the car) as a big-endian int32
    const ena = r.server.addressOf(704, 'WSetEna');
    await mbpoll([...common, '-0', '-r', String(ena), '127.0.0.1', '1', '1']);
    await mbpoll([...common, '-0', '-t', '4:int', '-B', '-r', String(r.server.addressOf(704, 'WSet')), '127.0.0.1', '20000']);
    assert.equal(r.inverter.setpointW, -2000);

    // outside the map: an exception, as a real device answers
    await assert.rejects(mbpoll([...common, '-0', '-r', '10', '-c', '1', '127.0.0.1']), /Illegal data address/);
  } finally {
    await r.dispose();
  }
});
