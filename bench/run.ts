/** `npm run bench`: every benchmark in turn, each printing its own figures. `npm run bench -- core` runs one. */
const only = process.argv.slice(2);
const benches: [string, () => Promise<{ main: () => Promise<unknown> }>][] = [
  ['core', () => import('./core.ts')],
  ['sunspec', () => import('./sunspec.ts')],
  ['meter', () => import('./meter.ts')],
  ['dispatch-wset', () => import('./dispatch-latency.ts')],
  ['slow-poll', () => import('./slow-poll.ts')],
  ['uplink', () => import('./uplink.ts')],
  ['store', () => import('./store.ts')],
  ['gpio', () => import('./gpio.ts')],
  ['can', () => import('./can.ts')],
  ['daemon', () => import('./daemon.ts')],
  ['web', () => import('./web.ts')],
  ['solar', () => import('./solar.ts')],
  ['homeowner', () => import('./homeowner.ts')],
];
for (const [name, load] of benches) {
  if (only.length && !only.includes(name)) continue;
  console.log(`\n## ${name}`);
  let mod: { main: () => Promise<unknown> };
  try {
    mod = await load();
  } catch (e) {
    console.log(`(not available: ${(e as Error).message.split('\n')[0]})`);
    continue;
  }
  await mod.main();
}
