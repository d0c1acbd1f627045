/** Status LED: blink patterns on the injected clock, polarity, and a broken line that never throws. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LED_PATTERNS, StatusLed, type LedStatus } from '../../hal/gpio/status-led.ts';
import { SimLine } from '../../hal/sim/lines.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { T0_MS } from '../contract/gpio-contract.ts';

/** The LED's level sampled every `stepMs` for `forMs`. */
function sample(clock: VirtualClock, line: SimLine, forMs: number, stepMs: number): number[] {
  const out: number[] = [];
  for (let t = 0; t < forMs; t += stepMs) {
    out.push(line.read());
    clock.advance(stepMs);
  }
  return out;
}

async function settle(): Promise<void> {
  // writes resolve on the microtask queue
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

describe('StatusLed', () => {
  it('is dark until told a status', () => {
    const clock = new VirtualClock(T0_MS);
    const line = new SimLine('led', 0);
    const led = new StatusLed(line, clock);
    clock.advance(10_000);
    assert.deepEqual(line.writes, []);
    assert.equal(led.state().status, undefined);
    assert.equal(clock.pendingTimers(), 0);
  });

  const expected: Record<LedStatus, { litMs: number; periodMs: number }> = {
    ok: { litMs: 100, periodMs: 2000 },
    backup: { litMs: 1000, periodMs: 2000 },
    fault: { litMs: 150, periodMs: 300 },
  };
  for (const status of ['ok', 'backup', 'fault'] as LedStatus[]) {
    it(`shows ${status} as ${expected[status].litMs} ms lit every ${expected[status].periodMs} ms`, () => {
      const clock = new VirtualClock(T0_MS);
      const line = new SimLine('led', 0);
      const led = new StatusLed(line, clock);
      led.setStatus(status);
      const { litMs, periodMs } = expected[status];
      const levels = sample(clock, line, 3 * periodMs, 10);
      const perPeriod = periodMs / 10;
      for (let p = 0; p < 3; p++) {
        const period = levels.slice(p * perPeriod, (p + 1) * perPeriod);
        assert.equal(period.filter((l) => l === 1).length, litMs / 10, `period ${p}`);
        assert.equal(period[0], 1, 'each period starts lit');
      }
      assert.equal(led.state().status, status);
      assert.equal(LED_PATTERNS[status].reduce((a, s) => a + s.durationMs, 0), periodMs);
    });
  }

  it('keeps the rhythm when told the same status every tick', () => {
    const clock = new VirtualClock(T0_MS);
    const line = new SimLine('led', 0);
    const led = new StatusLed(line, clock);
    led.setStatus('ok');
    // a 1 s tick repeating "ok" must not restart the 2 s heartbeat, or the LED would only ever flash at ticks
    let lit = 0;
    for (let tick = 0; tick < 10; tick++) {
      for (let i = 0; i < 100; i++) {
        if (line.read() === 1) lit++;
        clock.advance(10);
      }
      led.setStatus('ok');
    }
    assert.equal(lit, 5 * 10, 'five 100 ms flashes in 10 s');
  });

  it('switches pattern at once on a new status', () => {
    const clock = new VirtualClock(T0_MS);
    const line = new SimLine('led', 0);
    const led = new StatusLed(line, clock);
    led.setStatus('ok');
    clock.advance(500);
    assert.equal(line.read(), 0);
    led.setStatus('fault');
    assert.equal(line.read(), 1, 'fault starts lit, without waiting out the heartbeat');
    clock.advance(150);
    assert.equal(line.read(), 0);
    clock.advance(150);
    assert.equal(line.read(), 1);
    assert.equal(clock.pendingTimers(), 1, 'one pattern runs at a time');
  });

  it('honours an LED that lights at level 0', () => {
    const clock = new VirtualClock(T0_MS);
    const line = new SimLine('led', 1);
    const led = new StatusLed(line, clock, { onLevel: 0 });
    led.setStatus('backup');
    assert.equal(line.read(), 0);
    assert.equal(led.state().lit, false, 'lit is set when the write has resolved');
    clock.advance(1000);
    assert.equal(line.read(), 1);
  });

  it('records a broken line as a fault, keeps trying, and clears the fault when writes work again', async () => {
    const clock = new VirtualClock(T0_MS);
    const line = new SimLine('led', 0);
    line.failWith = new Error('EIO: i/o error, write');
    const led = new StatusLed(line, clock);
    led.setStatus('fault');
    await settle();
    assert.equal(led.state().fault?.code, 'io_error');
    assert.match(led.state().fault!.message, /led: EIO/);
    clock.advance(1500);
    await settle();
    line.failWith = undefined;
    clock.advance(150);
    await settle();
    assert.equal(led.state().fault, undefined);
    assert.ok(line.writes.length > 0);
  });

  it('goes dark and stops its timer on close, and ignores later statuses', async () => {
    const clock = new VirtualClock(T0_MS);
    const line = new SimLine('led', 0);
    const led = new StatusLed(line, clock);
    led.setStatus('backup');
    assert.equal(line.read(), 1);
    await led.close();
    assert.equal(line.read(), 0);
    assert.equal(clock.pendingTimers(), 0);
    led.setStatus('fault');
    clock.advance(5000);
    assert.equal(line.read(), 0);
  });
});
