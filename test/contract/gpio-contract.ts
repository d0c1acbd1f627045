/**
 * Behavioural contract of the GPIO ports (grid sense, relays, e-stop), shared by every line back-end:
 * the stand-in lines and the onoff driver (over a stand-in with onoff's Gpio API). Each suite takes a
 * builder that wires a port to its lines and hands back the knobs a test needs to play the electrical side.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EStopPort, GridSensePort, RelayPort } from '../../hal/ports.ts';
import type { Level } from '../../hal/gpio/lines.ts';
import type { VirtualClock } from '../../hal/sim/virtual-clock.ts';

export const T0_MS = Date.UTC(2026, 10, 23, 18, 0, 0);

const other = (l: Level) => (1 - l) as Level;

function counter(subscribe: (l: () => void) => () => void) {
  const c = { n: 0, off: () => {} };
  c.off = subscribe(() => c.n++);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Grid sense

export interface GridSenseWiringUnderTest {
  activeLevel: Level;
  debounceMs: number;
  /** Electrical level on the pin at open. */
  initialLevel: Level;
}

export interface GridSenseHarness {
  port: GridSensePort;
  clock: VirtualClock;
  /** Set the electrical level on the grid-sense pin. */
  drive(level: Level): void;
  /** Make reads of the line fail (undefined: work again); absent when the back-end cannot fail reads. */
  failReads?(err: Error | undefined): void;
}

export function gridSenseContract(name: string, build: (w: GridSenseWiringUnderTest) => GridSenseHarness): void {
  describe(`GridSensePort contract: ${name}`, () => {
    for (const activeLevel of [1, 0] as Level[]) {
      it(`reports the level at open with activeLevel ${activeLevel}`, async () => {
        const present = build({ activeLevel, debounceMs: 10, initialLevel: activeLevel });
        await present.port.open();
        assert.equal(present.port.state().present, true);
        await present.port.close();
        const absent = build({ activeLevel, debounceMs: 10, initialLevel: other(activeLevel) });
        await absent.port.open();
        assert.equal(absent.port.state().present, false);
        assert.equal(absent.port.state().fault, undefined);
        await absent.port.close();
      });

      it(`reports a loss that holds once, debounceMs after the edge (activeLevel ${activeLevel})`, async () => {
        const debounceMs = 10;
        const h = build({ activeLevel, debounceMs, initialLevel: activeLevel });
        await h.port.open();
        const changes = counter((l) => h.port.onChange(l));
        const edgeAtMs = h.clock.nowMs();
        h.drive(other(activeLevel));
        h.clock.advance(debounceMs - 1);
        assert.equal(changes.n, 0, 'not before the debounce time');
        assert.equal(h.port.state().present, true);
        h.clock.advance(1);
        assert.equal(changes.n, 1, 'once the level has held for debounceMs');
        assert.equal(h.port.state().present, false);
        assert.equal(h.port.state().changedAtMs, edgeAtMs + debounceMs);
        h.clock.advance(10 * debounceMs);
        assert.equal(changes.n, 1, 'reported once');
        h.drive(activeLevel);
        h.clock.advance(debounceMs);
        assert.equal(changes.n, 2);
        assert.equal(h.port.state().present, true);
        await h.port.close();
      });
    }

    it('ignores a glitch shorter than debounceMs', async () => {
      const debounceMs = 20;
      const h = build({ activeLevel: 1, debounceMs, initialLevel: 1 });
      await h.port.open();
      const changes = counter((l) => h.port.onChange(l));
      h.drive(0);
      h.clock.advance(debounceMs - 5);
      h.drive(1);
      h.clock.advance(5 * debounceMs);
      assert.equal(changes.n, 0);
      assert.equal(h.port.state().present, true);
      await h.port.close();
    });

    it('reports a bouncing edge once, after it settles', async () => {
      const debounceMs = 10;
      const h = build({ activeLevel: 1, debounceMs, initialLevel: 1 });
      await h.port.open();
      const changes = counter((l) => h.port.onChange(l));
      const bounces: Level[] = [0, 1, 0, 1, 0];
      for (const level of bounces) {
        h.drive(level);
        h.clock.advance(2);
      }
      assert.equal(changes.n, 0);
      h.clock.advance(debounceMs);
      assert.equal(changes.n, 1);
      assert.equal(h.port.state().present, false);
      await h.port.close();
    });

    it('reports an edge at once when debounceMs is 0', async () => {
      const h = build({ activeLevel: 1, debounceMs: 0, initialLevel: 1 });
      await h.port.open();
      const changes = counter((l) => h.port.onChange(l));
      h.drive(0);
      assert.equal(changes.n, 1);
      assert.equal(h.port.state().present, false);
      await h.port.close();
    });

    it('keeps notifying the other listeners when one throws, and stops after unsubscribe', async () => {
      const h = build({ activeLevel: 1, debounceMs: 0, initialLevel: 1 });
      await h.port.open();
      const off = h.port.onChange(() => {
        throw new Error('listener bug');
      });
      const changes = counter((l) => h.port.onChange(l));
      h.drive(0);
      assert.equal(changes.n, 1);
      changes.off();
      off();
      h.drive(1);
      assert.equal(changes.n, 1);
      await h.port.close();
    });

    it('is silent after close and leaves no timer behind', async () => {
      const h = build({ activeLevel: 1, debounceMs: 10, initialLevel: 1 });
      await h.port.open();
      const changes = counter((l) => h.port.onChange(l));
      const timersBefore = h.clock.pendingTimers();
      h.drive(0);
      await h.port.close();
      h.clock.advance(100);
      h.drive(1);
      h.drive(0);
      h.clock.advance(100);
      assert.equal(changes.n, 0);
      assert.ok(h.clock.pendingTimers() <= timersBefore);
    });

    it('turns a failing read into a fault with its cause, without throwing, and clears it when reads work', async (t) => {
      const h = build({ activeLevel: 1, debounceMs: 5, initialLevel: 1 });
      if (!h.failReads) return t.skip('this back-end cannot fail reads');
      await h.port.open();
      const changes = counter((l) => h.port.onChange(l));
      h.failReads(new Error('EIO: i/o error, read'));
      h.drive(0);
      h.drive(1);
      h.clock.advance(5);
      const fault = h.port.state().fault;
      assert.ok(fault, 'fault set');
      assert.equal(fault.code, 'io_error');
      assert.match(fault.message, /EIO/);
      assert.ok(changes.n >= 1, 'the fault is announced');
      h.failReads(undefined);
      const before = changes.n;
      h.drive(0);
      h.drive(1);
      h.clock.advance(5);
      assert.equal(h.port.state().fault, undefined, 'a sane read clears the fault');
      assert.equal(h.port.state().present, true);
      assert.ok(changes.n > before, 'the recovery is announced');
      await h.port.close();
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Relays: contactor (+ feedback) and load-shed tiers

export interface RelayWiringUnderTest {
  closedLevel: Level;
  feedbackClosedLevel: Level;
  /** One entry per tier: the level that powers it. */
  tierOnLevels: Level[];
  /** Initial electrical levels: contactor output, feedback input, tier outputs. */
  initial: { contactor: Level; feedback: Level; tiers: Level[] };
}

export interface RelayHarness {
  port: RelayPort;
  clock: VirtualClock;
  /** Electrical level on the contactor output pin. */
  contactorLevel(): Level;
  /** Every level written to the contactor pin, in order. */
  contactorWrites(): Level[];
  tierLevel(index: number): Level;
  driveFeedback(level: Level): void;
  /** Make writes to the contactor (or tier `index`) fail with `err`; undefined: work again. */
  failWrites(target: 'contactor' | number, err: Error | undefined): void;
  /** Bounce filter on the feedback input that the back-end applies, ms (0 = none). */
  feedbackDebounceMs: number;
}

export function relayContract(name: string, build: (w: RelayWiringUnderTest) => RelayHarness): void {
  const wiring = (closedLevel: Level, feedbackClosedLevel: Level, tierOnLevels: Level[] = [1, 1]): RelayWiringUnderTest => ({
    closedLevel,
    feedbackClosedLevel,
    tierOnLevels,
    initial: { contactor: closedLevel, feedback: feedbackClosedLevel, tiers: tierOnLevels },
  });

  describe(`RelayPort contract: ${name}`, () => {
    for (const [closedLevel, feedbackClosedLevel] of [
      [1, 1],
      [0, 1],
      [1, 0],
      [0, 0],
    ] as [Level, Level][]) {
      it(`commands the contactor with closedLevel ${closedLevel} and reads feedback with closedLevel ${feedbackClosedLevel}`, async () => {
        const h = build(wiring(closedLevel, feedbackClosedLevel));
        await h.port.open();
        assert.equal(h.port.state().contactorCommandClosed, true);
        assert.equal(h.port.state().contactorFeedbackClosed, true);
        await h.port.setContactor(false);
        assert.equal(h.contactorLevel(), other(closedLevel));
        assert.equal(h.port.state().contactorCommandClosed, false);
        assert.equal(h.port.state().contactorFeedbackClosed, true, 'feedback is the contact, not the command');
        const changes = counter((l) => h.port.onChange(l));
        h.driveFeedback(other(feedbackClosedLevel));
        h.clock.advance(h.feedbackDebounceMs);
        assert.equal(h.port.state().contactorFeedbackClosed, false);
        assert.equal(h.port.state().feedbackChangedAtMs, h.clock.nowMs());
        assert.equal(changes.n, 1);
        await h.port.setContactor(true);
        assert.equal(h.contactorLevel(), closedLevel);
        assert.equal(h.port.state().contactorCommandClosed, true);
        await h.port.close();
      });
    }

    it('reads an open contactor and open feedback at open', async () => {
      const h = build({ closedLevel: 1, feedbackClosedLevel: 1, tierOnLevels: [1], initial: { contactor: 0, feedback: 0, tiers: [0] } });
      await h.port.open();
      assert.equal(h.port.state().contactorCommandClosed, false);
      assert.equal(h.port.state().contactorFeedbackClosed, false);
      assert.deepEqual(h.port.state().loadTiersOn, [false]);
      await h.port.close();
    });

    it('switches load tiers with their own polarity, and ignores a tier that is not wired', async () => {
      const tierOnLevels: Level[] = [1, 0, 1];
      const h = build(wiring(1, 1, tierOnLevels));
      await h.port.open();
      assert.deepEqual(h.port.state().loadTiersOn, [true, true, true]);
      await h.port.setLoadTier(0, false);
      await h.port.setLoadTier(1, false);
      assert.deepEqual(h.port.state().loadTiersOn, [false, false, true]);
      assert.equal(h.tierLevel(0), 0);
      assert.equal(h.tierLevel(1), 1);
      assert.equal(h.tierLevel(2), 1);
      await h.port.setLoadTier(1, true);
      assert.equal(h.tierLevel(1), 0);
      await h.port.setLoadTier(7, false);
      assert.deepEqual(h.port.state().loadTiersOn, [false, true, true]);
      assert.equal(h.port.state().fault, undefined);
      await h.port.close();
    });

    it('turns a contactor write failure into a fault with its cause, never a rejection', async () => {
      const h = build(wiring(1, 1));
      await h.port.open();
      const changes = counter((l) => h.port.onChange(l));
      h.failWrites('contactor', new Error('EIO: i/o error, write'));
      await h.port.setContactor(false);
      const fault = h.port.state().fault;
      assert.ok(fault);
      assert.equal(fault.code, 'io_error');
      assert.match(fault.message, /contactor/);
      assert.match(fault.message, /EIO/);
      assert.equal(fault.sinceMs, h.clock.nowMs());
      assert.equal(h.port.state().contactorCommandClosed, true, 'a failed command is not recorded as done');
      assert.equal(changes.n, 1);
      h.failWrites('contactor', undefined);
      await h.port.setContactor(false);
      assert.equal(h.port.state().fault, undefined, 'a good write clears it');
      assert.equal(h.port.state().contactorCommandClosed, false);
      await h.port.close();
    });

    it('turns a tier write failure into a fault that names the tier; its next good write clears it', async () => {
      const h = build(wiring(1, 1));
      await h.port.open();
      h.failWrites(1, new Error('EIO: i/o error, write'));
      await h.port.setLoadTier(1, false);
      const fault = h.port.state().fault;
      assert.ok(fault);
      assert.match(fault.message, /tier|load/i);
      assert.deepEqual(h.port.state().loadTiersOn, [true, true]);
      await h.port.setContactor(false);
      assert.ok(h.port.state().fault, 'a good write elsewhere does not hide the broken tier');
      h.failWrites(1, undefined);
      await h.port.setLoadTier(1, false);
      assert.equal(h.port.state().fault, undefined);
      assert.deepEqual(h.port.state().loadTiersOn, [true, false]);
      await h.port.close();
    });

    it('records every contactor command on the pin in order', async () => {
      const h = build(wiring(0, 1));
      await h.port.open();
      const before = h.contactorWrites().length;
      await h.port.setContactor(false);
      await h.port.setContactor(true);
      await h.port.setContactor(false);
      assert.deepEqual(h.contactorWrites().slice(before), [1, 0, 1]);
      await h.port.close();
    });

    it('is silent after close', async () => {
      const h = build(wiring(1, 1));
      await h.port.open();
      const changes = counter((l) => h.port.onChange(l));
      await h.port.close();
      h.driveFeedback(0);
      h.clock.advance(h.feedbackDebounceMs + 1);
      assert.equal(changes.n, 0);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// E-stop

export interface EStopHarness {
  port: EStopPort;
  clock: VirtualClock;
  drive(level: Level): void;
  /** Bounce filter the back-end applies, ms (0 = none). */
  debounceMs: number;
}

export function estopContract(name: string, build: (w: { pressedLevel: Level; initialLevel: Level }) => EStopHarness): void {
  describe(`EStopPort contract: ${name}`, () => {
    for (const pressedLevel of [1, 0] as Level[]) {
      it(`reports presses and releases with pressedLevel ${pressedLevel}`, async () => {
        const h = build({ pressedLevel, initialLevel: other(pressedLevel) });
        await h.port.open();
        assert.equal(h.port.state().pressed, false);
        const changes = counter((l) => h.port.onChange(l));
        h.drive(pressedLevel);
        h.clock.advance(h.debounceMs);
        assert.equal(h.port.state().pressed, true);
        assert.equal(changes.n, 1);
        h.drive(other(pressedLevel));
        h.clock.advance(h.debounceMs);
        assert.equal(h.port.state().pressed, false);
        assert.equal(changes.n, 2);
        await h.port.close();
      });
    }

    it('reports a button already pressed at open', async () => {
      const h = build({ pressedLevel: 0, initialLevel: 0 });
      await h.port.open();
      assert.equal(h.port.state().pressed, true);
      await h.port.close();
    });

    it('reports a press that holds once, however the contact bounces', async () => {
      const h = build({ pressedLevel: 1, initialLevel: 0 });
      await h.port.open();
      const changes = counter((l) => h.port.onChange(l));
      for (const level of [1, 0, 1, 0, 1] as Level[]) h.drive(level);
      h.clock.advance(h.debounceMs);
      assert.equal(h.port.state().pressed, true);
      // without a filter each bounce is an edge; with one, only the settled level counts
      if (h.debounceMs > 0) assert.equal(changes.n, 1);
      else assert.equal(changes.n % 2, 1);
      h.clock.advance(1000);
      const settled = changes.n;
      h.clock.advance(1000);
      assert.equal(changes.n, settled);
      await h.port.close();
    });

    it('is silent after close', async () => {
      const h = build({ pressedLevel: 1, initialLevel: 0 });
      await h.port.open();
      const changes = counter((l) => h.port.onChange(l));
      await h.port.close();
      h.drive(1);
      h.clock.advance(h.debounceMs + 1);
      assert.equal(changes.n, 0);
    });
  });
}
