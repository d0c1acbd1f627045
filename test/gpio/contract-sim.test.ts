/** The GPIO port contracts over the stand-in lines (what the simulated site and `npm start` use). */
import { LineEStop, LineGridSense, LineRelays, type DigitalLine, type Level } from '../../hal/gpio/lines.ts';
import { SimLine } from '../../hal/sim/lines.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { T0_MS, estopContract, gridSenseContract, relayContract } from '../contract/gpio-contract.ts';
import { invertedLine } from '../../hal/gpio/wiring.ts';

gridSenseContract('LineGridSense over SimLine', (w) => {
  const clock = new VirtualClock(T0_MS);
  const line = new SimLine('grid-sense', w.initialLevel);
  // SimLine cannot fail a read; a thin wrapper plays a line whose reads break (a vanished sysfs file)
  let readError: Error | undefined;
  const failing: DigitalLine = {
    name: line.name,
    read: () => {
      if (readError) throw readError;
      return line.read();
    },
    write: (level) => line.write(level),
    watch: (listener) => line.watch(listener),
    close: () => line.close(),
  };
  return {
    port: new LineGridSense(failing, clock, { activeLevel: w.activeLevel, debounceMs: w.debounceMs }),
    clock,
    drive: (level) => line.set(level),
    failReads: (err) => {
      readError = err;
    },
  };
});

relayContract('LineRelays over SimLine', (w) => {
  const clock = new VirtualClock(T0_MS);
  const contactor = new SimLine('contactor', w.initial.contactor);
  const feedback = new SimLine('contactor-feedback', w.initial.feedback);
  const tiers = w.tierOnLevels.map((_, i) => new SimLine(`load-tier-${i + 1}`, w.initial.tiers[i]));
  const tierOnLevel: Level = w.tierOnLevels[0] ?? 1;
  const port = new LineRelays(
    { contactor, contactorFeedback: feedback, loadTiers: tiers.map((l, i) => (w.tierOnLevels[i] === tierOnLevel ? l : invertedLine(l))) },
    clock,
    { closedLevel: w.closedLevel, feedbackClosedLevel: w.feedbackClosedLevel, tierOnLevel },
  );
  return {
    port,
    clock,
    contactorLevel: () => contactor.read(),
    contactorWrites: () => contactor.writes,
    tierLevel: (i) => tiers[i].read(),
    driveFeedback: (level) => feedback.set(level),
    failWrites: (target, err) => {
      (target === 'contactor' ? contactor : tiers[target]).failWith = err;
    },
    feedbackDebounceMs: 0,
  };
});

estopContract('LineEStop over SimLine', (w) => {
  const clock = new VirtualClock(T0_MS);
  const line = new SimLine('estop', w.initialLevel);
  return { port: new LineEStop(line, clock, { pressedLevel: w.pressedLevel }), clock, drive: (level) => line.set(level), debounceMs: 0 };
});
