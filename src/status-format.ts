/** Human-readable `wallbox status`. */
export function formatStatus(s: Record<string, unknown>): string {
  const get = (path: string): unknown => path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), s);
  const num = (v: unknown, digits = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '--');
  const lines = [
    `device       ${get('deviceId') ?? '?'} (${get('version') ?? '?'})`,
    `mode         ${get('mode')}${Array.isArray(get('reasons')) && (get('reasons') as string[]).length ? ` (${(get('reasons') as string[]).join(', ')})` : ''}`,
    `grid         ${get('grid')}`,
    `car          SoC ${num(get('socPct'))} % from ${get('socSource')}${get('socAgeS') !== null ? `, ${get('socAgeS')} s old` : ''}`,
    `power        ${get('powerW')} W (setpoint ${get('setpointW')} W; + into the car)`,
    `floors       discharge ${num(get('floors.dischargeFloorPct'))} %, effective ${num(get('floors.effectiveFloorPct'))} %, backup ${num(get('floors.backupFloorPct'))} %`,
    `departure    ${get('departureAt') ?? 'none'}${get('departureAtRisk') ? ' (AT RISK)' : ''}`,
    `dispatch     ${get('dispatchId') ?? 'none'}`,
    `backup       ${get('backup.active') ? `${get('backup.phase')}, ${num(get('backup.hoursLeft'))} h left, shed tiers ${JSON.stringify(get('backup.shedTiers'))}` : 'not active'}`,
    `energy       imported ${num(get('energy.importedWh'))} Wh, exported ${num(get('energy.exportedWh'))} Wh since start`,
  ];
  const totals = get('totals');
  if (totals && typeof totals === 'object') lines.push(`totals       ${JSON.stringify(totals)}`);
  return lines.join('\n');
}
