/** `wallbox simulate SCENARIO.json [--plot FILE.svg] [--json]`: a scenario under the virtual clock. */
import { writeFileSync } from 'node:fs';
import { EXIT, HELP, parse, UsageError, type CliIo } from './common.ts';

export async function simulateCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('simulate', args, { plot: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) {
    io.out(HELP.simulate);
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError('simulate takes exactly one SCENARIO.json', 'simulate');
  const { loadScenarioFile, runScenario, formatSummary } = await import('../simulate.ts');
  const scenario = loadScenarioFile(positionals[0]);
  const result = await runScenario(scenario, { name: positionals[0] });
  if (values.plot) {
    const { plotContext, plotSvg } = await import('../plot.ts');
    writeFileSync(values.plot as string, await plotSvg(result.samples, scenario.description ?? positionals[0], plotContext(result)));
  }
  io.out(values.json ? JSON.stringify(result.summary) : formatSummary(result.summary) + (values.plot ? `\nplot         ${values.plot}` : ''));
  return EXIT.ok;
}
