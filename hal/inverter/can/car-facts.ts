/**
 * What the CAN driver knows about the car behind the DC stage, from outside the CAN bus: its SoC and the DC
 * power flowing at it. The driver advertises the SoC to the inverter (0x355) and uses the power as its
 * measurement when the inverter's own frames carry none (only a Sunny Island's 0x305 does).
 *
 * From the vehicle link (ISO 15118 bridge): the SoC as the car sent it, and the power from the session's
 * energy counters (charged − discharged Wh) between two updates of the link, stamped with the later
 * update's time, so its age is the link's age and the staleness rules apply.
 */
import type { VehicleState } from '../../ports.ts';

export interface CarFacts {
  /** The car's SoC, %, and when the car sent it (epoch ms, monotonic clock). */
  socPct?: number;
  socAtMs?: number;
  /** DC power at the car, W, positive into the car, and when it was measured. */
  dcPowerW?: number;
  powerAtMs?: number;
  /** Where the power figure came from, for the reading's source (`vehicle-counters`, `meter`). */
  powerSource?: string;
}

export type CarFactsSource = () => CarFacts;

/**
 * Car facts from a vehicle link's state. Power comes from the session counters once two updates with
 * different times have been seen; a counter that goes backwards (a new session) starts over.
 */
export function vehicleLinkFacts(vehicle: { state(): VehicleState }): CarFactsSource {
  let prev: { chargedWh: number; dischargedWh: number; atMs: number } | undefined;
  let power: { w: number; atMs: number } | undefined;
  return () => {
    const s = vehicle.state();
    if (s.chargedWh !== undefined && s.dischargedWh !== undefined && Number.isFinite(s.chargedWh) && Number.isFinite(s.dischargedWh) && Number.isFinite(s.atMs)) {
      const next = { chargedWh: s.chargedWh, dischargedWh: s.dischargedWh, atMs: s.atMs };
      if (!prev || s.atMs < prev.atMs || s.chargedWh < prev.chargedWh || s.dischargedWh < prev.dischargedWh) {
        // first sight, or the counters went back (a new session): no power until the next update
        prev = next;
        power = undefined;
      } else if (s.atMs > prev.atMs) {
        const netWh = s.chargedWh - s.dischargedWh - (prev.chargedWh - prev.dischargedWh);
        power = { w: (netWh * 3_600_000) / (s.atMs - prev.atMs), atMs: s.atMs };
        prev = next;
      }
    }
    const soc = s.connected && s.socPct !== undefined && Number.isFinite(s.socPct) ? s.socPct : undefined;
    return {
      socPct: soc,
      socAtMs: soc === undefined ? undefined : s.socAtMs ?? s.atMs,
      dcPowerW: power?.w,
      powerAtMs: power?.atMs,
      powerSource: power ? 'vehicle-counters' : undefined,
    };
  };
}
