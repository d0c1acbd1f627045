import type { Config, ControlSettings } from '../config/types.ts';

/** The part of the config the control core reads. */
export function controlSettings(c: Config): ControlSettings {
  return {
    vehicle: c.vehicle,
    backup: c.backup,
    site: c.site,
    control: c.control,
    timezone: c.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC',
    overrides: c.overrides,
    charge: c.charge,
  };
}
