/**
 * The GPIO port contracts over the onoff driver, with a stand-in for onoff's Gpio (this machine has no
 * GPIO lines): the same suites as the stand-in lines, through OnoffLine and openGpioPorts.
 */
import { openGpioPorts } from '../../hal/gpio/onoff.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { FakeGpioBoard } from '../helpers/fake-onoff.ts';
import { T0_MS, estopContract, gridSenseContract, relayContract } from '../contract/gpio-contract.ts';

const PIN = { gridSense: 4, estop: 5, contactor: 17, feedback: 27, tiers: [22, 23, 24, 25] };

gridSenseContract('onoff driver (stand-in Gpio)', (w) => {
  const clock = new VirtualClock(T0_MS);
  const board = new FakeGpioBoard(clock);
  board.drive(PIN.gridSense, w.initialLevel);
  const ports = openGpioPorts(
    { driver: 'onoff', gridSense: { pin: PIN.gridSense, activeLevel: w.activeLevel, debounceMs: w.debounceMs } },
    clock,
    { gpioFactory: board.factory },
  );
  return {
    port: ports.gridSense!,
    clock,
    drive: (level) => board.drive(PIN.gridSense, level),
    failReads: (err) => {
      board.gpio(PIN.gridSense).failRead = err;
    },
  };
});

for (const feedbackDebounceMs of [0, 15]) {
  relayContract(`onoff driver (stand-in Gpio), feedback debounce ${feedbackDebounceMs} ms`, (w) => {
    const clock = new VirtualClock(T0_MS);
    const board = new FakeGpioBoard(clock);
    // a previous run left the outputs claimed at these levels; the driver must keep them
    board.preExportOutput(PIN.contactor, w.initial.contactor);
    w.initial.tiers.forEach((level, i) => board.preExportOutput(PIN.tiers[i], level));
    board.drive(PIN.feedback, w.initial.feedback);
    const ports = openGpioPorts(
      {
        driver: 'onoff',
        contactor: { pin: PIN.contactor, closedLevel: w.closedLevel },
        contactorFeedback: { pin: PIN.feedback, closedLevel: w.feedbackClosedLevel, debounceMs: feedbackDebounceMs },
        loadShed: w.tierOnLevels.map((onLevel, i) => ({ pin: PIN.tiers[i], onLevel, label: `load ${i + 1}` })),
      },
      clock,
      { gpioFactory: board.factory },
    );
    return {
      port: ports.relays!,
      clock,
      contactorLevel: () => board.level(PIN.contactor),
      contactorWrites: () => board.gpio(PIN.contactor).writes,
      tierLevel: (i) => board.level(PIN.tiers[i]),
      driveFeedback: (level) => board.drive(PIN.feedback, level),
      failWrites: (target, err) => {
        board.gpio(target === 'contactor' ? PIN.contactor : PIN.tiers[target]).failWrite = err;
      },
      feedbackDebounceMs,
    };
  });
}

for (const debounceMs of [0, 10]) {
  estopContract(`onoff driver (stand-in Gpio), debounce ${debounceMs} ms`, (w) => {
    const clock = new VirtualClock(T0_MS);
    const board = new FakeGpioBoard(clock);
    board.drive(PIN.estop, w.initialLevel);
    const ports = openGpioPorts({ driver: 'onoff', estop: { pin: PIN.estop, pressedLevel: w.pressedLevel, debounceMs } }, clock, {
      gpioFactory: board.factory,
    });
    return { port: ports.estop!, clock, drive: (level) => board.drive(PIN.estop, level), debounceMs };
  });
}
