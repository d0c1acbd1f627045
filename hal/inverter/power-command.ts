/**
 * The power command a driver may write (hal/ports.ts, InverterPort `setPowerW`): a non-finite command is
 * ignored (the device keeps its last one; writing NaN would put whatever the register encoding makes of it
 * on the power stage), and a command outside the ratings is clamped to them, so the clamp shows in the next
 * reading's `setpointW`. Shared by the SunSpec and CAN drivers. Without ratings yet (SunSpec before model
 * 702 was read) the value passes unclamped; the device's own limits apply.
 */
import type { InverterRatings } from '../ports.ts';

export function boundedPowerW(
  powerW: number,
  ratings: Pick<InverterRatings, 'maxChargeW' | 'maxDischargeW'> | undefined,
  ignored: (message: string) => void,
): number | undefined {
  if (!Number.isFinite(powerW)) {
    ignored(`ignoring non-finite power command ${powerW}`);
    return undefined;
  }
  return ratings ? Math.max(-ratings.maxDischargeW, Math.min(ratings.maxChargeW, powerW)) : powerW;
}
