/** The gpio section through the config loader: schema and cross-key rules, each problem by key. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../src/config/load.ts';

function problemsOf(extra: unknown): string[] {
  try {
    loadConfig(null, extra);
    return [];
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
}

describe('gpio config through the loader', () => {
  it('accepts a full wiring', () => {
    const c = loadConfig(null, {
      gpio: {
        driver: 'onoff',
        gridSense: { pin: 4, activeLevel: 0, debounceMs: 10 },
        contactor: { pin: 17, closedLevel: 1 },
        contactorFeedback: { pin: 27, closedLevel: 1, debounceMs: 5 },
        loadShed: [{ pin: 22, onLevel: 1, label: 'heat pump' }, { pin: 23, onLevel: 0, label: 'oven' }],
        estop: { pin: 5, pressedLevel: 0 },
        statusLed: { pin: 26 },
      },
    });
    assert.equal(c.gpio.driver, 'onoff');
  });

  it('refuses a pin used twice, naming both keys', () => {
    assert.deepEqual(problemsOf({ gpio: { driver: 'onoff', contactor: { pin: 17 }, estop: { pin: 17 } } }), ['gpio.estop.pin: GPIO 17 is already used by gpio.contactor']);
  });

  it('refuses out-of-range pins, bad levels and unknown keys by key', () => {
    const problems = problemsOf({ gpio: { driver: 'onoff', contactor: { pin: 1024, closedLevel: 2, invert: true } } });
    assert.ok(problems.some((p) => p.startsWith('gpio.contactor.pin:')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('gpio.contactor.closedLevel:')), problems.join('\n'));
    assert.ok(problems.includes('gpio.contactor.invert: unknown key'), problems.join('\n'));
  });

  it('refuses load-shed tiers without a contactor', () => {
    assert.deepEqual(problemsOf({ gpio: { driver: 'onoff', loadShed: [{ pin: 22 }] } }), ['gpio.loadShed: needs gpio.contactor']);
  });
});
