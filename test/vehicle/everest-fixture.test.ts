/**
 * Replays a recorded sequence of EVerest API messages (test/fixtures/everest/session.json) through a
 * real broker into the EVerest link, and checks the port's readings after every message.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type MqttClient } from 'mqtt';
import { startBroker, type TestBroker } from '../helpers/broker.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { EverestVehicleLink, type EverestLinkCounters, type EverestVehicleState } from '../../hal/vehicle/everest.ts';
import { logCollector, waitFor } from './helpers.ts';

interface Step {
  atS: number;
  topic: string;
  payload?: unknown;
  raw?: string;
  note?: string;
  expect: Record<string, unknown>;
  absent?: string[];
  counters?: Partial<EverestLinkCounters>;
}

interface Fixture {
  evseId: string;
  start: string;
  link: { nominalVoltageV?: number; phases?: number };
  steps: Step[];
  final: { counters: Partial<EverestLinkCounters>; warningsInclude: string[] };
}

const fixture = JSON.parse(readFileSync(new URL('../fixtures/everest/session.json', import.meta.url), 'utf8')) as Fixture;

describe('EVerest link: replay of a recorded session', () => {
  let broker: TestBroker;
  let pub: MqttClient;
  before(async () => {
    broker = await startBroker();
    pub = connect(broker.url, { protocolVersion: 4, reconnectPeriod: 0 });
    await new Promise<void>((resolve, reject) => {
      pub.once('connect', () => resolve());
      pub.once('error', reject);
    });
  });
  after(async () => {
    await pub.endAsync(true);
    await broker.stop();
  });

  it(`gives the expected port readings after each of the ${fixture.steps.length} messages`, async () => {
    const startMs = Date.parse(fixture.start);
    const clock = new VirtualClock(startMs);
    const logs = logCollector();
    const link = new EverestVehicleLink({ url: broker.url, evseId: fixture.evseId, clock, forwardLimit: false, log: logs.log, ...fixture.link });
    await link.open();
    const resolve = (v: unknown) => (typeof v === 'string' && /^\+\d+(\.\d+)?s$/.test(v) ? startMs + Number(v.slice(1, -1)) * 1000 : v);
    try {
      for (const [i, step] of fixture.steps.entries()) {
        const where = `step ${i} (${step.topic} at ${step.atS} s${step.note ? `: ${step.note}` : ''})`;
        clock.advanceTo(startMs + step.atS * 1000);
        const seen = link.counters.messages + link.counters.rejectedMessages;
        const body = step.raw ?? JSON.stringify(step.payload);
        await pub.publishAsync(`everest_api/${fixture.evseId}/var/${step.topic}`, body, { qos: 0 });
        await waitFor(() => link.counters.messages + link.counters.rejectedMessages > seen, `${where} to arrive`);
        const s = link.state() as EverestVehicleState & Record<string, unknown>;
        for (const [k, v] of Object.entries(step.expect)) assert.deepEqual(s[k], resolve(v), `${where}: ${k}`);
        for (const k of step.absent ?? []) assert.equal(s[k], undefined, `${where}: ${k} should be missing`);
        for (const [k, v] of Object.entries(step.counters ?? {})) assert.equal(link.counters[k as keyof EverestLinkCounters], v, `${where}: counter ${k}`);
        assert.equal(s.fault, undefined, `${where}: no fault`);
      }
      for (const [k, v] of Object.entries(fixture.final.counters)) assert.equal(link.counters[k as keyof EverestLinkCounters], v, `final counter ${k}`);
      const warnings = logs.lines.filter((l) => l.startsWith('warn')).join('\n');
      for (const w of fixture.final.warningsInclude) assert.ok(warnings.includes(w), `a warning mentions ${w}:\n${warnings}`);
    } finally {
      await link.close();
    }
  });
});
