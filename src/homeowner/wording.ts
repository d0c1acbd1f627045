/**
 * Config problems in the homeowner's words. The validator (src/config/load.ts) says `key: rule` in the
 * installer's terms (a JSON-schema rule, a regex); a person changing one setting wants the rule in plain
 * language and the value they gave: "vehicle.departureTime: must be a time like 07:30 (24-hour HH:MM);
 * you gave "7:30"". Used by `wallbox config set`, the quick actions, the local page and Home Assistant.
 */
import { getKey } from '../config/load.ts';

/** One refused value: the dotted key and the message for a person. */
export interface SettingProblem {
  key: string;
  message: string;
}

const TIME_PATTERN = '^([01][0-9]|2[0-3]):[0-5][0-9]$';

/** The homeowner's settings that hold a time of day (24-hour HH:MM in the file). */
export const TIME_OF_DAY_KEYS: readonly string[] = ['vehicle.departureTime'];
const TIME_WORDS = 'must be a time like 07:30 (24-hour HH:MM)';

/**
 * A time of day as a person types it, in the file's form: "7:30" → "07:30" (the quick actions take "7:30"
 * too). Anything else is returned as it is, for the validator to refuse in words.
 */
export function normaliseTimeOfDay(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const m = /^\s*(\d{1,2}):(\d{2})\s*$/.exec(value);
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) return value;
  return `${m[1].padStart(2, '0')}:${m[2]}`;
}

/** Patterns of config/schema.json and what they ask for, in words. */
const PATTERN_WORDS: [test: (pattern: string) => boolean, words: string][] = [
  [(p) => p === TIME_PATTERN, TIME_WORDS],
  [(p) => p.startsWith('^\\d{4}-\\d{2}-\\d{2}T'), 'must be a date and time with its zone, like 2026-12-24T07:00:00Z'],
  [(p) => p === '^[A-Za-z0-9_-]{1,64}$', 'may hold only letters, digits, "_" and "-", 1 to 64 of them'],
  [(p) => p === '^[A-Z]{3}$', 'must be a three-letter currency code like EUR'],
  [(p) => p.startsWith('^[A-Z][A-Z0-9_]'), 'must be an alarm name in capitals, like GRID_DISCONNECT'],
];

const TYPE_WORDS: Record<string, string> = {
  number: 'a number',
  integer: 'a whole number',
  boolean: 'true or false',
  string: 'text',
  object: 'a group of settings in braces, like {"key": value}',
  array: 'a list in brackets, like [1, 2]',
  null: 'null (none)',
};

function typeWords(list: string): string {
  const parts = list.split(',').map((t) => TYPE_WORDS[t.trim()] ?? t.trim());
  return parts.length > 1 ? `${parts.slice(0, -1).join(', ')} or ${parts[parts.length - 1]}` : parts[0];
}

/** The rule part of a `key: rule` problem, in plain words. */
export function plainRule(rule: string): string {
  let m: RegExpExecArray | null;
  if ((m = /^must match (.+)$/.exec(rule))) {
    const hit = PATTERN_WORDS.find(([t]) => t(m![1]));
    return hit ? hit[1] : 'is not written in a form this setting accepts';
  }
  if ((m = /^must be (string|number|integer|boolean|object|array|null)(,[a-z,]+)?$/.exec(rule))) return `must be ${typeWords(m[1] + (m[2] ?? ''))}`;
  if ((m = /^must be >= (-?[\d.e+]+)$/.exec(rule))) return `must be at least ${m[1]}`;
  if ((m = /^must be <= (-?[\d.e+]+)$/.exec(rule))) return `must be at most ${m[1]}`;
  if ((m = /^must be > (-?[\d.e+]+)$/.exec(rule))) return `must be more than ${m[1]}`;
  if ((m = /^must be < (-?[\d.e+]+)$/.exec(rule))) return `must be less than ${m[1]}`;
  if ((m = /^must NOT have more than (\d+) characters$/.exec(rule))) return `must be at most ${m[1]} characters long`;
  if ((m = /^must NOT have fewer than (\d+) characters$/.exec(rule))) return m[1] === '1' ? 'must not be empty' : `must be at least ${m[1]} characters long`;
  if ((m = /^must NOT have more than (\d+) items$/.exec(rule))) return `must be a list of at most ${m[1]} entries`;
  if ((m = /^must NOT have fewer than (\d+) items$/.exec(rule))) return `must be a list of at least ${m[1]} entries`;
  if (/^must NOT have duplicate items/.test(rule)) return 'must not list the same entry twice';
  if ((m = /^must be multiple of (.+)$/.exec(rule))) return `must be a multiple of ${m[1]}`;
  if (rule === 'must be a finite number') return 'must be a number this device can hold (not too large)';
  if (rule === 'unknown key') return 'is not a setting (check the spelling; `wallbox config get` shows them all)';
  if (rule === 'required') return 'is needed and missing';
  if ((m = /^must be one of (.+)$/.exec(rule))) return `must be one of ${m[1].replace(/, ([^,]+)$/, ' or $1')}`;
  return rule;
}

/**
 * A validator problem (`key: rule`) as a {@link SettingProblem} in plain words, with the value given at
 * that key in `candidate` (the merged config that was refused) when there is one.
 */
export function plainProblem(problem: string, candidate?: unknown): SettingProblem {
  const i = problem.indexOf(': ');
  if (i < 0) return { key: '(file)', message: problem };
  const key = problem.slice(0, i);
  const rule = problem.slice(i + 2);
  // a time given as a number (`config set vehicle.departureTime 7.30`): the type rule says "text", the person meant a time
  const message = TIME_OF_DAY_KEYS.includes(key) && /^must be string/.test(rule) ? `${TIME_WORDS}, or null for none` : plainRule(rule);
  const given = candidate !== undefined && key !== '(root)' ? getKey(candidate, key) : undefined;
  // the value is already in a cross-key rule's text ("must not exceed … (60 > 50)"); elsewhere say it
  const showValue = given !== undefined && message !== 'is not a setting (check the spelling; `wallbox config get` shows them all)' && !/\(-?[\d.]+ [<>] -?[\d.]+\)$/.test(rule);
  return { key, message: showValue ? `${message}; you gave ${shortJson(given)}` : message };
}

export function shortJson(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
