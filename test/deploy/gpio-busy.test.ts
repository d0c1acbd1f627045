/**
 * A GPIO line that is busy or not permitted when the daemon starts: the hardware still builds, the runtime
 * starts in fault with the cause in its status, and the lines are claimed once they are free (the runtime
 * retries opening; here the open is called again by hand). Stand-in: test/helpers/fake-onoff.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import { buildHardware } from '../../src/wiring.ts';
import { FakeGpioBoard } from '../helpers/fake-onoff.ts';

test('a busy contactor line at start: hardware builds, the runtime runs in fault naming the line, and the line is claimed once free', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-gpio-busy-'));
  const clock = new VirtualClock(Date.UTC(2026, 0, 15, 12));
  const board = new FakeGpioBoard(clock);
  board.busy.add(17);
  const config = loadConfig(null, {
    timezone: 'UTC',
    uplink: { url: null },
    storage: { path: join(dir, 'w.db') },
    inverter: { driver: 'sim' },
    vehicleLink: { driver: 'sim' },
    gpio: { driver: 'onoff', gridSense: { pin: 4 }, contactor: { pin: 17 }, estop: { pin: 5, pressedLevel: 1 } },
  });
  const hw = await buildHardware(config, clock, () => {}, { gpioFactory: board.factory });
  try {
    assert.ok(hw.describe.some((l) => /not claimed yet: .*GPIO 17.*EBUSY/.test(l)), hw.describe.join('\n'));
    assert.ok(hw.ports.relays && hw.ports.gridSense && hw.ports.estop, 'every wired role has a port');
    await assert.rejects(hw.ports.relays.open(), /GPIO 17.*EBUSY/);
    assert.match(hw.ports.relays.state().fault?.message ?? '', /GPIO 17/);
    assert.equal(hw.ports.relays.state().contactorCommandClosed, false);
    assert.equal(hw.ports.estop!.state().pressed, true, 'an e-stop that cannot be read is not released');
    // commands on an unclaimed port neither throw nor drive anything
    await hw.ports.relays.setContactor(true);
    assert.equal(board.isExported(17), false);

    const rt = new Runtime({ ports: hw.ports, config, timer: false });
    await rt.start();
    const s = rt.status();
    assert.equal(s.mode, 'fault', JSON.stringify(s));
    assert.equal(s.setpointW, 0);

    board.busy.delete(17);
    await hw.ports.relays.open();
    await hw.ports.gridSense.open();
    await hw.ports.estop!.open();
    assert.equal(hw.ports.relays.state().fault, undefined);
    assert.equal(board.isExported(17), true, 'the contactor line is claimed now');
    assert.equal(hw.ports.estop!.state().pressed, false, 'the real e-stop line reads released');
    await rt.stop();
  } finally {
    await hw.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
