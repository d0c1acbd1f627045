/** The onoff driver: wiring config, claiming lines (and the errors when a line cannot be claimed), release. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GPIO_DEFAULTS, GpioConfigError, gpioConfigProblems, parseGpioConfig } from '../../hal/gpio/config.ts';
import { GpioOpenError, OnoffLine, loadOnoff, openGpioPorts } from '../../hal/gpio/onoff.ts';
import { SimLine } from '../../hal/sim/lines.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { FakeGpioBoard } from '../helpers/fake-onoff.ts';
import { T0_MS } from '../contract/gpio-contract.ts';

const FULL = {
  driver: 'onoff',
  gridSense: { pin: 4, activeLevel: 1, debounceMs: 10 },
  contactor: { pin: 17, closedLevel: 1 },
  contactorFeedback: { pin: 27, closedLevel: 0 },
  loadShed: [
    { pin: 22, onLevel: 1, label: 'heat pump' },
    { pin: 23, onLevel: 0, label: 'oven' },
  ],
  estop: { pin: 5, pressedLevel: 0 },
  statusLed: { pin: 26 },
};

function sysError(code: string, message: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

describe('gpio config', () => {
  it('fills in the defaults', () => {
    const s = parseGpioConfig({ driver: 'onoff', gridSense: { pin: 4 }, contactor: { pin: 17 }, loadShed: [{ pin: 22 }], estop: { pin: 5 }, statusLed: { pin: 6 } });
    assert.deepEqual(s.gridSense, { pin: 4, activeLevel: 1, debounceMs: GPIO_DEFAULTS.gridSenseDebounceMs });
    assert.deepEqual(s.contactor, { pin: 17, closedLevel: 1 });
    assert.deepEqual(s.loadShed, [{ pin: 22, onLevel: 1, label: 'tier 1' }]);
    assert.deepEqual(s.estop, { pin: 5, pressedLevel: 1, debounceMs: 0 });
    assert.deepEqual(s.statusLed, { pin: 6, onLevel: 1 });
  });

  it('accepts the full wiring and an absent section', () => {
    assert.deepEqual(gpioConfigProblems(FULL), []);
    assert.deepEqual(parseGpioConfig(undefined), { driver: 'none', loadShed: [] });
    assert.deepEqual(gpioConfigProblems({ driver: 'sim' }), []);
  });

  it('names both keys when two roles share a pin', () => {
    const problems = gpioConfigProblems({ ...FULL, estop: { pin: 17 }, loadShed: [{ pin: 22 }, { pin: 22 }] });
    assert.ok(problems.includes('gpio.estop.pin: GPIO 17 is already used by gpio.contactor'), problems.join('\n'));
    assert.ok(problems.includes('gpio.loadShed.1.pin: GPIO 22 is already used by gpio.loadShed.0'), problems.join('\n'));
  });

  it('rejects pins that are not integers from 0 to 1023, with the value', () => {
    for (const pin of [-1, 1024, 3.5, '17', null]) {
      const problems = gpioConfigProblems({ driver: 'onoff', contactor: { pin } });
      assert.equal(problems.length, 1, `pin ${JSON.stringify(pin)}`);
      assert.match(problems[0], /^gpio\.contactor\.pin: must be an integer from 0 to 1023 \(got /);
    }
    assert.deepEqual(gpioConfigProblems({ driver: 'onoff', contactor: { pin: 0 } }), []);
    assert.deepEqual(gpioConfigProblems({ driver: 'onoff', contactor: { pin: 1023 } }), []);
    assert.deepEqual(gpioConfigProblems({ driver: 'onoff', contactor: {} }), ['gpio.contactor.pin: required']);
  });

  it('rejects bad levels, debounce times, labels, unknown keys and drivers, each by key', () => {
    const problems = gpioConfigProblems({
      driver: 'wiringpi',
      gridSense: { pin: 4, activeLevel: 'high', debounceMs: -1 },
      contactor: { pin: 17, closedLevel: 2, polarity: 'x' },
      loadShed: [{ pin: 22, label: '' }],
      statusLed: { pin: 26, onLevel: true },
      relays: {},
    });
    for (const expected of [
      /^gpio\.driver: must be one of "onoff", "sim", "none"/,
      /^gpio\.gridSense\.activeLevel: must be 0 or 1/,
      /^gpio\.gridSense\.debounceMs: must be a number of ms/,
      /^gpio\.contactor\.closedLevel: must be 0 or 1/,
      /^gpio\.contactor\.polarity: unknown key/,
      /^gpio\.loadShed\.0\.label: must be a non-empty string/,
      /^gpio\.statusLed\.onLevel: must be 0 or 1/,
      /^gpio\.relays: unknown key/,
    ])
      assert.ok(problems.some((p) => expected.test(p)), `${expected} in\n${problems.join('\n')}`);
  });

  it('needs a contactor for feedback and load-shed tiers', () => {
    assert.deepEqual(gpioConfigProblems({ driver: 'onoff', contactorFeedback: { pin: 27 }, loadShed: [{ pin: 22 }] }), [
      'gpio.contactorFeedback: needs gpio.contactor',
      'gpio.loadShed: needs gpio.contactor',
    ]);
  });

  it('throws every problem at once from parseGpioConfig', () => {
    assert.throws(
      () => parseGpioConfig({ driver: 'onoff', contactor: { pin: 2000 }, estop: { pin: 'x' } }),
      (e: unknown) => e instanceof GpioConfigError && e.problems.length === 2 && /gpio\.contactor\.pin/.test(e.message) && /gpio\.estop\.pin/.test(e.message),
    );
  });

  it('is refused by openGpioPorts before any line is claimed', () => {
    const board = new FakeGpioBoard(new VirtualClock(T0_MS));
    assert.throws(() => openGpioPorts({ ...FULL, estop: { pin: 4 } }, board.clock, { gpioFactory: board.factory }), GpioConfigError);
    assert.equal(board.opened.length, 0);
  });
});

describe('openGpioPorts with the onoff driver', () => {
  it('claims each line the way onoff needs it: inputs on both edges, our own polarity, outputs at a safe level', () => {
    const board = new FakeGpioBoard(new VirtualClock(T0_MS));
    for (const pin of [4, 17, 27, 22, 23, 5, 26]) board.activeLowPins.add(pin);
    const ports = openGpioPorts({ ...FULL, estop: { pin: 5, pressedLevel: 0, debounceMs: 10 } }, board.clock, { gpioFactory: board.factory });
    assert.ok(ports.gridSense && ports.relays && ports.estop && ports.statusLed);
    const byPin = new Map(board.opened.map((g) => [g.pin, g]));
    for (const pin of [4, 27, 5]) {
      assert.equal(byPin.get(pin)?.direction, 'in', `pin ${pin}`);
      assert.equal(byPin.get(pin)?.edge, 'both', `pin ${pin}`);
    }
    for (const pin of [17, 22, 23, 26]) assert.equal(byPin.get(pin)?.direction, 'out', `pin ${pin}`);
    for (const g of board.opened) assert.equal(g.options.activeLow, false, `pin ${g.pin}: polarity is ours`);
    assert.equal(byPin.get(4)?.options.debounceTimeout, undefined, 'the grid sense debounces on the injected clock');
    assert.equal(byPin.get(5)?.options.debounceTimeout, 10);
    // freshly claimed: contactor closed (house on the grid), loads powered, LED dark
    assert.equal(board.level(17), 1);
    assert.equal(board.level(22), 1);
    assert.equal(board.level(23), 0);
    assert.equal(board.level(26), 0);
    assert.deepEqual([...ports.lines.keys()], ['grid sense', 'contactor feedback', 'e-stop', 'contactor', 'load-shed tier 1 (heat pump)', 'load-shed tier 2 (oven)', 'status LED']);
  });

  it('keeps the level of an output a previous run left claimed', async () => {
    const board = new FakeGpioBoard(new VirtualClock(T0_MS));
    board.preExportOutput(17, 0);
    const ports = openGpioPorts({ driver: 'onoff', contactor: { pin: 17, closedLevel: 1 } }, board.clock, { gpioFactory: board.factory });
    assert.equal(board.level(17), 0, 'an open contactor stays open until the runtime decides');
    await ports.relays!.open();
    assert.equal(ports.relays!.state().contactorCommandClosed, false);
  });

  for (const [code, pattern] of [
    ['EBUSY', /held by another driver/],
    ['EINVAL', /no such line/],
    ['EACCES', /permission denied/],
    ['ENOENT', /sysfs GPIO file is missing/],
  ] as const) {
    it(`turns ${code} from onoff into an error naming the pin and its role, and releases the lines already claimed`, () => {
      const board = new FakeGpioBoard(new VirtualClock(T0_MS));
      const factory: typeof board.factory = (pin, direction, edge, options) => {
        if (pin === 22) throw sysError(code, code === 'ENOENT' ? "no such file or directory, open '/sys/class/gpio/export'" : 'write');
        return board.factory(pin, direction, edge, options);
      };
      assert.throws(
        () => openGpioPorts(FULL, board.clock, { gpioFactory: factory }),
        (e: unknown) => {
          assert.ok(e instanceof GpioOpenError);
          assert.equal(e.pin, 22);
          assert.equal(e.role, 'load-shed');
          assert.equal(e.code, code);
          assert.match(e.message, /^cannot open GPIO 22 for the load-shed tier 1 \(heat pump\) \(output\): /);
          assert.match(e.message, new RegExp(code));
          assert.match(e.message, pattern);
          return true;
        },
      );
      assert.ok(board.opened.length > 0);
      for (const g of board.opened) assert.equal(g.released, true, `pin ${g.pin} released`);
    });
  }

  it('reports a pin the stand-in board does not have, and one that is busy, through its own errors', () => {
    const board = new FakeGpioBoard(new VirtualClock(T0_MS));
    board.missing.add(4);
    assert.throws(() => openGpioPorts(FULL, board.clock, { gpioFactory: board.factory }), /cannot open GPIO 4 for the grid sense \(input\): EINVAL/);
    const busy = new FakeGpioBoard(new VirtualClock(T0_MS));
    busy.busy.add(5);
    assert.throws(() => openGpioPorts(FULL, busy.clock, { gpioFactory: busy.factory }), /cannot open GPIO 5 for the e-stop \(input\): EBUSY/);
  });

  it('releases every line on close, and the ports stay quiet afterwards', async () => {
    const board = new FakeGpioBoard(new VirtualClock(T0_MS));
    const ports = openGpioPorts(FULL, board.clock, { gpioFactory: board.factory });
    await ports.gridSense!.open();
    await ports.relays!.open();
    await ports.estop!.open();
    ports.statusLed!.setStatus('ok');
    await ports.close();
    for (const g of board.opened) {
      assert.equal(g.released, true, `pin ${g.pin}`);
      assert.equal(g.listenerCount(), 0, `pin ${g.pin}`);
    }
    assert.equal(board.level(26), 0, 'LED left dark');
    await ports.close();
    await ports.relays!.setContactor(false);
    assert.ok(ports.relays!.state().fault, 'a write after release is a fault, not a rejection');
  });

  it('builds nothing for driver "none"', async () => {
    const ports = openGpioPorts({ driver: 'none' }, new VirtualClock(T0_MS));
    assert.equal(ports.gridSense, undefined);
    assert.equal(ports.relays, undefined);
    assert.equal(ports.lines.size, 0);
    await ports.close();
  });

  it('builds the same ports on the simulated site\'s lines for driver "sim"', async () => {
    const clock = new VirtualClock(T0_MS);
    assert.throws(() => openGpioPorts({ driver: 'sim', contactor: { pin: 17 } }, clock), /simulated site supplies the lines/);
    const made: SimLine[] = [];
    const ports = openGpioPorts({ ...FULL, driver: 'sim' }, clock, {
      simLineFor: (req) => {
        const line = new SimLine(req.label, req.initialLevel ?? 0);
        made.push(line);
        return line;
      },
    });
    assert.equal(made.length, 7);
    await ports.relays!.open();
    await ports.relays!.setLoadTier(1, false);
    assert.equal(made.find((l) => l.name === 'load-shed tier 2 (oven)')?.read(), 1, 'oven relay powers at level 0, so off is 1');
  });
});

describe('onoff on this machine', () => {
  it('fails to claim a line with an error that names the pin, the role and the missing sysfs GPIO', (t) => {
    let Gpio: ReturnType<typeof loadOnoff>;
    try {
      Gpio = loadOnoff();
    } catch (e) {
      return t.skip(`onoff cannot be loaded here: ${(e as Error).message}`);
    }
    const accessible = (Gpio as unknown as { accessible: boolean }).accessible;
    if (accessible) return t.skip('this machine has sysfs GPIO; claiming a real line here could drive hardware');
    assert.throws(
      () => openGpioPorts({ driver: 'onoff', gridSense: { pin: 4 }, contactor: { pin: 17 } }, new VirtualClock(T0_MS)),
      (e: unknown) => {
        assert.ok(e instanceof GpioOpenError, String(e));
        assert.equal(e.pin, 4);
        assert.equal(e.role, 'grid-sense');
        assert.match(e.message, /^cannot open GPIO 4 for the grid sense \(input\): /);
        assert.match(e.message, /\/sys\/class\/gpio/);
        return true;
      },
    );
    assert.throws(() => OnoffLine.open({ role: 'contactor', pin: 17, direction: 'out', initialLevel: 1, label: 'contactor' }), /cannot open GPIO 17 for the contactor \(output\)/);
  });
});
