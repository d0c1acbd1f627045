/**
 * Snapshot assembly: what the ports say now, turned into the core's input. Owns the metering state
 * (energy since the last decision, from the inverter's counters) and the SoC source (the car's figure,
 * else the inverter's storage SoC, else tracked from metered energy).
 */
import type { Ports } from '../../hal/ports.ts';
import type { Config } from '../config/types.ts';
import type { DispatchCommand, EnergyDelta, Snapshot, SocSource } from '../control/types.ts';
import { initialMeterState, meterTick, type MeterState } from '../control/metering.ts';
import { initialSocTracker, updateSocTracker, type SocTrackerState } from '../control/soc-tracker.ts';

const zero = (): EnergyDelta => ({ exportedWh: 0, importedWh: 0, carSideWh: 0 });

export class SnapshotAssembler {
  meter: MeterState = initialMeterState();
  private socTracker: SocTrackerState = initialSocTracker();
  /** Energy metered outside a decision (start-up recovery), handed to the next one. */
  pendingEnergy: EnergyDelta = zero();
  readonly totals = { importedWh: 0, exportedWh: 0, carSideWh: 0 };

  constructor(private readonly ports: Ports) {}

  meterSettings(): { efficiency: number; maxPowerW: number } {
    const r = this.ports.inverter.state().ratings;
    return { efficiency: r?.efficiency ?? 0.9, maxPowerW: Math.max(r?.ratedW ?? 0, r?.maxChargeW ?? 0, r?.maxDischargeW ?? 0, 1) };
  }

  /**
   * @param extra what the runtime itself knows: faults it found (ports that failed to open, calls that did
   *   not answer in time, by port kind) and the contactor command it last issued.
   */
  take(
    now: number, config: Config, commands: DispatchCommand[],
    extra: {
      /** The calendar (the clock's `wallMs()`); `now` is the monotonic clock. */
      wallMs?: number;
      runtimeFault?: string;
      callFault: (kind: string) => string | undefined;
      contactorCommandedClosed: boolean;
      storage?: { writable: boolean; fault?: string };
    },
  ): Snapshot {
    const ports = this.ports;
    const inv = ports.inverter.state();
    const veh = ports.vehicle.state();
    const grid = ports.gridSense?.state();
    const relays = ports.relays?.state();
    const meter = ports.siteMeter?.state();
    let delta: EnergyDelta = zero();
    if (inv.reading) {
      const m = meterTick(this.meter, inv.reading, this.meterSettings());
      this.meter = m.state;
      delta = m.delta;
    }
    this.totals.importedWh += delta.importedWh;
    this.totals.exportedWh += delta.exportedWh;
    this.totals.carSideWh += delta.carSideWh;
    const energy = {
      importedWh: this.pendingEnergy.importedWh + delta.importedWh,
      exportedWh: this.pendingEnergy.exportedWh + delta.exportedWh,
      carSideWh: this.pendingEnergy.carSideWh + delta.carSideWh,
    };
    this.pendingEnergy = zero();

    // SoC: the car's own figure, else the inverter's storage SoC, else tracked from metered energy
    let socPct: number | undefined;
    let socAtMs: number | undefined;
    let socSource: SocSource = 'none';
    if (!veh.connected) this.socTracker = initialSocTracker();
    else {
      const invSoc = veh.socPct === undefined ? inv.reading?.storageSocPct : undefined;
      const t = updateSocTracker(this.socTracker, {
        atMs: now, reportedSocPct: veh.socPct, reportedAtMs: veh.socAtMs, carSideWh: delta.carSideWh,
        capacityWh: veh.capacityWh ?? config.vehicle.capacityWh ?? undefined, knownSocPct: invSoc,
        // a figure is never fresher than the link that carries the car's state (invariant 3)
        linkAtMs: veh.atMs,
      });
      this.socTracker = t.state;
      socPct = t.socPct;
      socAtMs = t.socAtMs;
      socSource = invSoc !== undefined ? 'inverter' : t.socSource;
    }
    const reading = inv.reading;
    const inverterFault = joinFaults(
      extra.callFault('inverter'),
      inv.fault ? `${inv.fault.code}: ${inv.fault.message}` : reading?.state === 'fault' ? `inverter reports FAULT${reading.alarms.length ? ` (${reading.alarms.join(', ')})` : ''}` : undefined,
    );
    const relaysFault = joinFaults(extra.callFault('relays'), relays?.fault?.message);
    return {
      wallMs: extra.wallMs,
      vehicle: {
        connected: veh.connected,
        socPct,
        socAtMs,
        socSource,
        capacityWh: veh.capacityWh,
        minSocPct: veh.minSocPct,
        maxSocPct: veh.maxSocPct,
        targetSocPct: veh.targetSocPct,
        departureAtMs: veh.departureAtMs,
        maxChargeW: veh.maxChargeW,
        maxDischargeW: veh.maxDischargeW,
        bidirectional: veh.bidirectional,
        chargerExportCapabilityW: veh.chargerExportCapabilityW,
        atMs: veh.atMs,
        fault: joinFaults(extra.callFault('vehicle'), veh.fault ? `${veh.fault.code}: ${veh.fault.message}` : undefined),
      },
      inverter: {
        atMs: reading?.atMs,
        powerW: reading?.acPowerW,
        ratedW: inv.ratings?.ratedW,
        maxChargeW: inv.ratings?.maxChargeW,
        maxDischargeW: inv.ratings?.maxDischargeW,
        efficiency: inv.ratings?.efficiency,
        gridForming: reading?.gridForming,
        connected: reading?.connected,
        // the alarm bits as reported; which of them mean a lost grid is the core's decision
        alarms: reading ? [...reading.alarms] : undefined,
        islandCapable: inv.ratings?.islandCapable,
        fault: inverterFault,
      },
      grid: { sensePresent: grid?.present, fault: grid?.fault ? `${grid.fault.code}: ${grid.fault.message}` : undefined },
      contactor: {
        installed: relays !== undefined,
        feedbackClosed: relays?.contactorFeedbackClosed,
        commandedClosed: extra.contactorCommandedClosed,
      },
      estopPressed: ports.estop?.state().pressed ?? false,
      houseLoadW: meter?.houseLoadW,
      houseLoadAtMs: meter?.atMs,
      houseLoadFault: joinFaults(extra.callFault('site-meter'), meter?.fault ? `${meter.fault.code}: ${meter.fault.message}` : undefined),
      // the meter's figures as reported; the core derives the house from them (src/control/limits.ts)
      gridPowerW: meter?.gridPowerW,
      gridPowerAtMs: meter?.gridPowerW !== undefined ? meter.atMs : undefined,
      pvPowerW: meter?.pvPowerW,
      pvPowerAtMs: meter?.pvPowerW !== undefined ? meter.pvAtMs ?? meter.atMs : undefined,
      pvPowerFault: meter?.pvFault ? `${meter.pvFault.code}: ${meter.pvFault.message}` : undefined,
      phaseCurrentsA: meter?.phaseCurrentsA ? [...meter.phaseCurrentsA] : undefined,
      phaseCurrentsAtMs: meter?.phaseCurrentsA !== undefined ? meter.atMs : undefined,
      loadTierCount: relays?.loadTiersOn.length ?? 0,
      commands,
      energy,
      storage: extra.storage,
      runtimeFault: joinFaults(extra.runtimeFault, relaysFault !== undefined ? `relays: ${relaysFault}` : undefined),
    };
  }
}

function joinFaults(...causes: (string | undefined)[]): string | undefined {
  const present = causes.filter((c): c is string => c !== undefined && c !== '');
  return present.length ? present.join('; ') : undefined;
}
