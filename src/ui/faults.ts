/**
 * Faults in the homeowner's words, each with what to do. The runtime names a fault as the core and the
 * drivers see it ("inverter: reading 12 s old", "grid contactor feedback shows closed while islanded");
 * the page shows what that means for the house and who can fix it.
 */
export interface PlainFault {
  /** What is wrong, in plain words. */
  what: string;
  /** What the homeowner can do. */
  todo: string;
  /** The runtime's own wording, for the installer. */
  detail: string;
}

const RULES: { test: RegExp; what: string; todo: string }[] = [
  { test: /emergency stop/i, what: 'The emergency stop is pressed: the charger is off.', todo: 'When it is safe, release the emergency stop button on the wallbox.' },
  { test: /contactor/i, what: 'The switch that separates the house from the grid does not report what it was told to do.', todo: 'Do not touch the wiring. Call your installer; the charger stays off until it is fixed.' },
  { test: /^inverter|inverter/i, what: 'The charger cannot talk to its power electronics (inverter): charging and discharging are stopped.', todo: 'Check that the inverter has power and its cable is plugged in; if it does not clear within a few minutes, call your installer.' },
  { test: /vehicle link|vehicle:|SoC .* old|vehicle/i, what: "The charger does not hear from the car (its charge level is unknown or old): it will not discharge it.", todo: 'Check the charging cable is firmly plugged in at both ends; wake the car with its app or by unlocking it.' },
  { test: /grid sense/i, what: 'The charger cannot tell whether the grid is there: backup is not available.', todo: 'Call your installer to check the grid sense line.' },
  { test: /storage|database|disk|SQLITE/i, what: 'The charger cannot save its records (the SD card is full or failing): no new V2G dispatch is taken.', todo: 'Restart the wallbox; if it comes back, call your installer about the SD card.' },
  { test: /gpio|line/i, what: 'A control line of the wallbox does not answer.', todo: 'Restart the wallbox; if it comes back, call your installer.' },
  { test: /stale|no reading/i, what: 'A measurement the charger needs is missing or old: power is held at zero.', todo: 'Wait a minute; if it stays, restart the wallbox or call your installer.' },
];

export function plainFault(detail: string): PlainFault {
  const r = RULES.find((x) => x.test.test(detail));
  return r ? { what: r.what, todo: r.todo, detail } : { what: 'The charger found a fault and has stopped charging and discharging.', todo: 'If it does not clear within a few minutes, restart the wallbox or call your installer.', detail };
}

/** Every distinct fault of a status (the core's, the ports', the runtime's own), in plain words. */
export function plainFaults(status: { fault?: unknown; portFaults?: unknown; faults?: unknown }): PlainFault[] {
  const all = [status.fault, ...(Array.isArray(status.portFaults) ? status.portFaults : []), ...(Array.isArray(status.faults) ? status.faults : [])]
    .filter((f): f is string => typeof f === 'string' && f.length > 0);
  return [...new Set(all)].map(plainFault);
}
