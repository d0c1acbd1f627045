/**
 * Claiming the contactor line never moves the contactor (issue 14, start-up knows where it is): after a
 * board reset mid-island the coil has been released and the contactor is open (feedback shows open);
 * a fresh claim that drives the line to `closedLevel` would close it onto the grid while the inverter may
 * still be forming, before the core has looked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildGpioPorts, type LineRequest } from '../../hal/gpio/wiring.ts';
import { parseGpioConfig } from '../../hal/gpio/config.ts';
import { SimLine } from '../../hal/sim/lines.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import type { Level } from '../../hal/gpio/lines.ts';

function claim(contactorClosedLevel: Level, feedbackClosedLevel: Level, feedbackNow: Level | 'broken') {
  const settings = parseGpioConfig({
    driver: 'onoff',
    contactor: { pin: 17, closedLevel: contactorClosedLevel },
    contactorFeedback: { pin: 27, closedLevel: feedbackClosedLevel },
  });
  const requests: LineRequest[] = [];
  buildGpioPorts(settings, new VirtualClock(0), (req) => {
    requests.push(req);
    const line = new SimLine(req.label, req.direction === 'out' ? req.initialLevel ?? 0 : feedbackNow === 'broken' ? 0 : feedbackNow);
    if (req.role === 'contactor-feedback' && feedbackNow === 'broken')
      line.read = () => {
        throw new Error('EIO');
      };
    return line;
  });
  return requests.find((r) => r.role === 'contactor')?.initialLevel;
}

test('a fresh claim of the contactor line closes a contactor that the feedback shows open (board reset mid-island)', () => {
  // energise-to-close (closedLevel 1), feedback high when closed, feedback shows open → claimed open (0)
  assert.equal(claim(1, 1, 0), 0);
  // active-low driver (closedLevel 0), feedback low when closed, feedback shows open (1) → claimed open (1)
  assert.equal(claim(0, 0, 1), 1);
});

test('a contactor the feedback shows closed is claimed closed (a restart on the grid does not blink the house)', () => {
  assert.equal(claim(1, 1, 1), 1);
  assert.equal(claim(0, 1, 1), 0);
});

test('a feedback line that cannot be read: the contactor is claimed open, the side that cannot close onto a grid', () => {
  assert.equal(claim(1, 1, 'broken'), 0);
});
