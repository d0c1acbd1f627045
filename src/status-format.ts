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
  const uplink = get('uplink') as { connected?: boolean; outbox?: number } | null | undefined;
  if (uplink) lines.push(`uplink       ${uplink.connected ? 'connected' : 'NOT connected'}, ${uplink.outbox ?? 0} message(s) waiting in the outbox`);
  for (const period of ['day', 'month', 'all'] as const) {
    const t = get(`totals.${period}`) as { dispatches?: number; exportedWh?: number; importedWh?: number; rewards?: { amount: number; currency: string }[] } | undefined;
    if (!t) continue;
    const reward = (t.rewards ?? []).map((r) => `${r.amount.toFixed(2)} ${r.currency}`).join(' + ') || 'no reward';
    const label = period === 'all' ? 'all time' : period === 'day' ? 'today' : 'this month';
    lines.push(`${label.padEnd(12)} ${t.dispatches ?? 0} dispatch(es), exported ${num(t.exportedWh)} Wh, imported ${num(t.importedWh)} Wh, ${reward}`);
  }
  return lines.join('\n');
}
