/** `wallbox config get [KEY]` and `wallbox config set KEY VALUE [--replace]`. */
import { ConfigError, getKey, loadConfig, parseConfigValue } from '../config/load.ts';
import type { Config } from '../config/types.ts';
import { changeSettings, SettingsError } from '../homeowner/settings.ts';
import { TIME_OF_DAY_KEYS, plainProblem } from '../homeowner/wording.ts';
import { EXIT, parse, UsageError, type CliIo } from './common.ts';
import { configPathFrom } from './context.ts';
import { reloadAnswer } from './daemon-link.ts';

export async function configCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse('config', args, { config: { type: 'string' }, replace: { type: 'boolean' } });
  const [sub, key, value, ...extra] = positionals;
  if (values.help) {
    const { HELP } = await import('./common.ts');
    io.out(HELP.config);
    return EXIT.ok;
  }
  const path = configPathFrom(values, io.env);
  if (sub === 'get') {
    if (value !== undefined) throw new UsageError('config get takes at most one KEY', 'config');
    let cfg: Config;
    try {
      cfg = loadConfig(path);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      io.err(`wallbox: the config file ${path} cannot be used:\n${e.problems.map((p) => `  - ${describe(plainProblem(p))}`).join('\n')}`);
      return EXIT.config;
    }
    const v = key === undefined ? cfg : getKey(cfg, key);
    if (v === undefined) {
      io.err(`wallbox: ${key} is not a setting (check the spelling; \`wallbox config get\` shows them all)`);
      return EXIT.config;
    }
    io.out(typeof v === 'string' ? v : JSON.stringify(v, null, 2));
    return EXIT.ok;
  }
  if (sub === 'set') {
    if (!key || value === undefined || extra.length) throw new UsageError('config set takes KEY and VALUE (JSON or plain text)', 'config');
    let parsed: unknown;
    try {
      // "7.30" for a time of day is not the number 7.3: kept as typed, so the refusal shows what was typed
      parsed = TIME_OF_DAY_KEYS.includes(key) && /^\s*\d{1,2}[.,]\d{2}\s*$/.test(value) ? value : parseConfigValue(value);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      io.err(`wallbox: ${key} was not changed: ${value} is not a number this device can hold.\nThe file ${path} was not changed.`);
      return EXIT.config;
    }
    let result: { config: Config; changed: string[] };
    try {
      result = changeSettings(path, [{ key, value: parsed }], { replace: values.replace === true });
    } catch (e) {
      if (!(e instanceof SettingsError)) throw e;
      const lines = e.problems.map((p) => `  - ${describe(p)}`);
      io.err(`wallbox: ${key} was not changed:\n${lines.join('\n')}\nThe file ${path} was not changed.`);
      return EXIT.config;
    }
    // say what changed, leaf by leaf: a section merge names only the keys it touched
    const shown = result.changed.length ? result.changed : [key];
    io.out(`${shown.map((k) => `${k} = ${JSON.stringify(getKey(result.config, k))}`).join(', ')}${result.changed.length ? '' : ' (no change)'} (written to ${path})`);
    io.out(await reloadAnswer(result.config, key));
    return EXIT.ok;
  }
  throw new UsageError(`config needs "get" or "set", got ${sub === undefined ? 'nothing' : `"${sub}"`}`, 'config');
}

function describe(p: { key: string; message: string }): string {
  return p.key === '(file)' ? p.message : `${p.key} ${p.message}`;
}
