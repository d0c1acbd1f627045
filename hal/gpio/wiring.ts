/**
 * From a `gpio` wiring to ports: asks a line factory for one DigitalLine per configured role and builds
 * the grid-sense, relay and e-stop ports (and the status LED) on them. The board's driver (onoff.ts) and the
 * simulated site supply different factories; everything above the line is shared.
 */
import type { Clock, EStopPort, GridSensePort, RelayPort } from '../ports.ts';
import type { GpioSettings } from './config.ts';
import { LineEStop, LineGridSense, LineRelays, type DigitalLine, type Level } from './lines.ts';
import { StatusLed } from './status-led.ts';

export type LineRole = 'grid-sense' | 'contactor' | 'contactor-feedback' | 'load-shed' | 'estop' | 'status-led';

/** What one line is for, as a factory needs to open it. */
export interface LineRequest {
  role: LineRole;
  pin: number;
  direction: 'in' | 'out';
  /** Outputs: the level to drive when the line is first claimed (the safe resting state of its role). */
  initialLevel?: Level;
  /** Inputs: bounce filter the line itself applies, ms (0 = none). */
  debounceMs?: number;
  /** For error messages and logs, e.g. `contactor` or `load-shed tier 2 (heat pump)`. */
  label: string;
}

export type LineFactory = (request: LineRequest) => DigitalLine;

export interface GpioPorts {
  gridSense?: GridSensePort;
  relays?: RelayPort;
  estop?: EStopPort;
  statusLed?: StatusLed;
  /** Every line claimed, by label, for diagnostics and tests. */
  lines: Map<string, DigitalLine>;
  /** Close the ports, darken the LED and release every line. Never rejects. */
  close(): Promise<void>;
}

/** The requests a wiring makes, in the order the lines are claimed. */
export function lineRequests(s: GpioSettings): LineRequest[] {
  const out: LineRequest[] = [];
  if (s.gridSense) out.push({ role: 'grid-sense', pin: s.gridSense.pin, direction: 'in', label: 'grid sense' });
  if (s.contactorFeedback)
    out.push({ role: 'contactor-feedback', pin: s.contactorFeedback.pin, direction: 'in', debounceMs: s.contactorFeedback.debounceMs, label: 'contactor feedback' });
  if (s.estop) out.push({ role: 'estop', pin: s.estop.pin, direction: 'in', debounceMs: s.estop.debounceMs, label: 'e-stop' });
  // a freshly claimed contactor output follows its feedback (contactorClaim): claiming never moves it
  if (s.contactor) out.push({ role: 'contactor', pin: s.contactor.pin, direction: 'out', initialLevel: s.contactor.closedLevel, label: 'contactor' });
  s.loadShed.forEach((t, i) =>
    out.push({ role: 'load-shed', pin: t.pin, direction: 'out', initialLevel: t.onLevel, label: `load-shed tier ${i + 1} (${t.label})` }),
  );
  if (s.statusLed)
    out.push({ role: 'status-led', pin: s.statusLed.pin, direction: 'out', initialLevel: (1 - s.statusLed.onLevel) as Level, label: 'status LED' });
  return out;
}

/**
 * A freshly claimed contactor output is driven to where its feedback contact shows the contactor is, so
 * claiming the line never moves it: after a board reset mid-island (coil released, contactor open) it
 * stays open until the core's interlock closes it (invariant 5). Without a feedback line (no islanding is
 * possible then) it is claimed closed. A line already claimed as an output keeps its level (onoff.ts).
 */
function contactorClaim(req: LineRequest, s: GpioSettings, feedback: DigitalLine | undefined): LineRequest {
  if (!s.contactor || !s.contactorFeedback || !feedback) return req;
  let feedbackLevel: Level;
  try {
    feedbackLevel = feedback.read();
  } catch {
    // a feedback line that cannot be read says nothing: open is the side that cannot close onto a grid
    return { ...req, initialLevel: (1 - s.contactor.closedLevel) as Level };
  }
  const showsClosed = feedbackLevel === s.contactorFeedback.closedLevel;
  return { ...req, initialLevel: showsClosed ? s.contactor.closedLevel : ((1 - s.contactor.closedLevel) as Level) };
}

function closeQuietly(line: DigitalLine): void {
  try {
    line.close();
  } catch {
    // releasing is best effort: the process is leaving the line either way
  }
}

/**
 * Claim every configured line through `lineFor` and build the ports on them. The ports are returned
 * unopened (the runtime opens them like every other port). If a line cannot be claimed, the lines already
 * claimed are released and the factory's error is thrown as is.
 */
export function buildGpioPorts(s: GpioSettings, clock: Clock, lineFor: LineFactory): GpioPorts {
  const lines = new Map<string, DigitalLine>();
  const byRole = new Map<LineRole, DigitalLine[]>();
  try {
    for (const request of lineRequests(s)) {
      const req = request.role === 'contactor' ? contactorClaim(request, s, byRole.get('contactor-feedback')?.[0]) : request;
      const line = lineFor(req);
      lines.set(req.label, line);
      byRole.set(req.role, [...(byRole.get(req.role) ?? []), line]);
    }
  } catch (e) {
    for (const line of lines.values()) closeQuietly(line);
    throw e;
  }
  const one = (role: LineRole) => byRole.get(role)?.[0];
  const ports: GpioPorts = {
    lines,
    async close() {
      for (const p of [ports.gridSense, ports.relays, ports.estop, ports.statusLed]) {
        try {
          await p?.close();
        } catch {
          // keep releasing the rest
        }
      }
      for (const line of lines.values()) closeQuietly(line);
    },
  };
  const gridSenseLine = one('grid-sense');
  if (s.gridSense && gridSenseLine)
    ports.gridSense = new LineGridSense(gridSenseLine, clock, { activeLevel: s.gridSense.activeLevel, debounceMs: s.gridSense.debounceMs });
  const contactorLine = one('contactor');
  if (s.contactor && contactorLine) {
    // with one tier level in LineRelays, mixed tier polarities are handled by inverting per line
    const tierOnLevel = s.loadShed[0]?.onLevel ?? 1;
    const loadTiers = (byRole.get('load-shed') ?? []).map((line, i) => (s.loadShed[i].onLevel === tierOnLevel ? line : invertedLine(line)));
    ports.relays = new LineRelays({ contactor: contactorLine, contactorFeedback: one('contactor-feedback'), loadTiers }, clock, {
      closedLevel: s.contactor.closedLevel,
      feedbackClosedLevel: s.contactorFeedback?.closedLevel ?? 1,
      tierOnLevel,
    });
  }
  const estopLine = one('estop');
  if (s.estop && estopLine) ports.estop = new LineEStop(estopLine, clock, { pressedLevel: s.estop.pressedLevel });
  const ledLine = one('status-led');
  if (s.statusLed && ledLine) ports.statusLed = new StatusLed(ledLine, clock, { onLevel: s.statusLed.onLevel });
  return ports;
}

/** The same line seen through an inverter: what reads 1 here is 0 on the pin, and the other way round. */
export function invertedLine(line: DigitalLine): DigitalLine {
  const flip = (l: Level) => (1 - l) as Level;
  return {
    name: line.name,
    read: () => flip(line.read()),
    write: (level) => line.write(flip(level)),
    watch: (listener) => line.watch((level) => listener(flip(level))),
    close: () => line.close(),
  };
}
