/**
 * Behavioural contract of the site meter port (hal/ports.ts, SiteMeterState), shared by every back-end:
 * the simulated site's meter, the SunSpec driver over real Modbus TCP and the MQTT driver on a real broker.
 * Each back-end gives a harness: how to make the measured site draw or export, how to silence the device,
 * and how to let time pass on its clock.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Clock, SiteMeterPort, SiteMeterState } from '../../hal/ports.ts';

export interface MeterHarness {
  port: SiteMeterPort;
  clock: Clock;
  /** Make the measured site import `gridPowerW` (negative: export), with PV at `pvPowerW` where the back-end has PV. */
  set(m: { gridPowerW: number; pvPowerW?: number }): Promise<void>;
  /** The device stops answering or publishing (true) or comes back (false); absent when it cannot. */
  silence?(on: boolean): void;
  /** Let `ms` pass on the harness clock (and on the wire, for devices polled in real time). */
  elapse(ms: number): Promise<void>;
  /** What the back-end reports besides grid power. */
  caps: { currents: boolean; pv: boolean; counters: boolean };
  dispose(): Promise<void>;
}

/** Every numeric figure of a state is finite; every fault is complete. */
function wellFormed(s: SiteMeterState, now: number, where: string): void {
  for (const [k, v] of Object.entries(s)) {
    if (typeof v === 'number') assert.ok(Number.isFinite(v), `${where}: ${k} = ${v}`);
  }
  for (const a of s.phaseCurrentsA ?? []) assert.ok(Number.isFinite(a) && a >= 0, `${where}: phase current ${a}`);
  for (const f of [s.fault, s.pvFault]) {
    if (!f) continue;
    assert.ok(typeof f.code === 'string' && f.code.length > 0, `${where}: fault code`);
    assert.ok(typeof f.message === 'string' && f.message.length > 10, `${where}: fault message "${f.message}"`);
    assert.ok(f.sinceMs <= now, `${where}: fault since the future`);
  }
  if (s.gridPowerW !== undefined) {
    assert.ok(s.atMs !== undefined && s.atMs <= now, `${where}: a figure without its time, or from the future`);
  }
}

export function meterContract(name: string, build: () => Promise<MeterHarness>): void {
  describe(`SiteMeterPort contract: ${name}`, () => {
    it('reports grid power import positive, export negative, stamped with the clock', async () => {
      const h = await build();
      try {
        await h.set({ gridPowerW: 1500 });
        await h.port.open();
        await h.port.refresh();
        const before = h.clock.nowMs();
        await h.set({ gridPowerW: 2750 });
        await h.port.refresh();
        let s = h.port.state();
        wellFormed(s, h.clock.nowMs(), 'importing');
        assert.equal(s.fault, undefined, s.fault?.message);
        assert.ok(Math.abs(s.gridPowerW! - 2750) <= 0.5, `import read as ${s.gridPowerW}`);
        assert.ok(s.atMs! >= before && s.atMs! <= h.clock.nowMs(), 'stamped when read');
        await h.set({ gridPowerW: -3200, pvPowerW: h.caps.pv ? 3800 : undefined });
        await h.port.refresh();
        s = h.port.state();
        wellFormed(s, h.clock.nowMs(), 'exporting');
        assert.ok(Math.abs(s.gridPowerW! + 3200) <= 0.5, `export read as ${s.gridPowerW}`);
        if (h.caps.pv) assert.ok(Math.abs(s.pvPowerW! - 3800) <= 0.5, `PV read as ${s.pvPowerW}`);
        if (h.caps.currents) assert.ok(s.phaseCurrentsA !== undefined && s.phaseCurrentsA.length >= 1, 'phase currents');
        if (h.caps.counters) assert.ok(s.importedWh !== undefined && s.exportedWh !== undefined, 'energy counters');
      } finally {
        await h.port.close();
        await h.dispose();
      }
    });

    it('a silent device: refresh still resolves, the figures are withdrawn with a fault, and come back', async (t) => {
      const h = await build();
      if (!h.silence) {
        await h.dispose();
        t.skip('this back-end cannot go silent');
        return;
      }
      try {
        await h.port.open();
        await h.set({ gridPowerW: 900 });
        await h.port.refresh();
        assert.ok(h.port.state().gridPowerW !== undefined, h.port.state().fault?.message);
        h.silence(true);
        // within 30 s of its clock every back-end must have noticed (polled: at once; pushed: its age limit)
        for (let i = 0; i < 30 && h.port.state().gridPowerW !== undefined; i++) {
          await h.elapse(1000);
          await h.port.refresh();
        }
        const s = h.port.state();
        wellFormed(s, h.clock.nowMs(), 'silent');
        assert.equal(s.gridPowerW, undefined, 'a silent device reports no figure');
        assert.ok(s.fault, 'and says why');
        h.silence(false);
        await h.set({ gridPowerW: 1100 });
        for (let i = 0; i < 10 && h.port.state().gridPowerW === undefined; i++) {
          await h.elapse(1000);
          await h.port.refresh();
        }
        const back = h.port.state();
        assert.equal(back.fault, undefined, back.fault?.message);
        assert.ok(Math.abs(back.gridPowerW! - 1100) <= 0.5, `back with ${back.gridPowerW}`);
      } finally {
        await h.port.close();
        await h.dispose();
      }
    });

    it('state() before open and after close never throws and holds no figure it cannot stand by', async () => {
      const h = await build();
      try {
        const s0 = h.port.state();
        wellFormed(s0, h.clock.nowMs(), 'before open');
        await h.set({ gridPowerW: 10 });
        await h.port.open();
        await h.port.close();
        wellFormed(h.port.state(), h.clock.nowMs(), 'after close');
        // a second close is harmless
        await h.port.close();
      } finally {
        await h.dispose();
      }
    });
  });
}
