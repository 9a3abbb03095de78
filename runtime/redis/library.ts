/**
 * The Functions library as Redis loads it: the Lua modules of lua/, one per
 * domain, concatenated in the order of LUA_MODULES into ONE library `voltage`
 * with ONE version, and the parts generated from the TypeScript side filled in
 * (the version, the command transitions from machines/commandMachine.ts, the
 * alarm transitions, active states and initial state from machines/alarmMachine.ts).
 * A new domain (alarms, rules, …) is one more entry in LUA_MODULES.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { activeAlarmStates, ALARM_INITIAL_STATE, alarmTransitions } from '../../machines/alarmMachine.js';
import { commandTransitions } from '../../machines/commandMachine.js';
import { VoltageError } from '../errors.js';

/** Bumped whenever a Function's keys, arguments or behaviour change. */
export const LIBRARY_VERSION = '34';
export const LIBRARY_NAME = 'voltage';

/** In load order: core first (its helpers are locals every later module uses). */
export const LUA_MODULES = ['core', 'telemetry', 'actors', 'site', 'commands', 'alarms', 'rules', 'cloud'] as const;

/** Every Function the library registers, by module (checked by test/integration/redis-library.test.ts). */
export const LUA_FUNCTIONS: Readonly<Record<(typeof LUA_MODULES)[number], readonly string[]>> = {
  core: ['voltage_version'],
  telemetry: ['c2m', 'c2m_group', 'model_set'],
  actors: ['actor_report'],
  site: ['site_stage', 'site_load'],
  commands: ['m2c', 'cmd_result'],
  alarms: ['alarm_init', 'alarm_commit'],
  rules: ['rule_init', 'rule_commit', 'rule_record', 'rule_notify'],
  cloud: ['cloud_resend_step'],
};

/** lua/, found from the sources (runtime/redis/) and from the bundle (dist/) alike. */
function luaDir(): string {
  const candidates = [new URL('../../lua/', import.meta.url), new URL('../lua/', import.meta.url)].map((u) => fileURLToPath(u));
  return candidates.find((p) => existsSync(`${p}core.lua`)) ?? candidates[0]!;
}

/** The command transitions as a Lua table, generated from machines/commandMachine.ts. */
function luaTransitions(): string {
  const entries = Object.entries(commandTransitions()).map(([from, tos]) => `${from} = { ${tos.map((t) => `${t} = true`).join(', ')} }`);
  return `{ ${entries.join(', ')} }`;
}

/** The alarm transitions (state → event → set of targets) as a Lua table, generated from machines/alarmMachine.ts. */
export function luaAlarmTransitions(): string {
  const states = Object.entries(alarmTransitions()).map(([from, byEvent]) => {
    const events = Object.entries(byEvent).map(([ev, tos]) => `${ev} = { ${tos.map((t) => `${t} = true`).join(', ')} }`);
    return `${from} = { ${events.join(', ')} }`;
  });
  return `{ ${states.join(', ')} }`;
}

/** Each placeholder line of the Lua sources and what replaces it. */
const GENERATED: ReadonlyArray<readonly [string, () => string]> = [
  ["local LIB_VERSION = '0' --@@LIB_VERSION@@", () => `local LIB_VERSION = '${LIBRARY_VERSION}'`],
  ['local COMMAND_TRANSITIONS = {} --@@COMMAND_TRANSITIONS@@', () => `local COMMAND_TRANSITIONS = ${luaTransitions()}`],
  ['local ALARM_TRANSITIONS = {} --@@ALARM_TRANSITIONS@@', () => `local ALARM_TRANSITIONS = ${luaAlarmTransitions()}`],
  [
    'local ALARM_ACTIVE = {} --@@ALARM_ACTIVE@@',
    () =>
      `local ALARM_ACTIVE = { ${activeAlarmStates()
        .map((s) => `${s} = true`)
        .join(', ')} }`,
  ],
  ["local ALARM_INITIAL = 'normal' --@@ALARM_INITIAL@@", () => `local ALARM_INITIAL = '${ALARM_INITIAL_STATE}'`],
];

function buildSource(): string {
  const dir = luaDir();
  let text = `#!lua name=${LIBRARY_NAME}\n`;
  for (const m of LUA_MODULES) text += `\n-- ---- lua/${m}.lua ----\n${readFileSync(`${dir}${m}.lua`, 'utf8')}`;
  for (const [placeholder, fill] of GENERATED) {
    if (!text.includes(placeholder)) throw new VoltageError('runtime', 'LUA_PLACEHOLDER_MISSING', `lua/: the generated line '${placeholder}' is missing`);
    text = text.replace(placeholder, fill());
  }
  return text;
}

/** The library as loaded by FUNCTION LOAD REPLACE. */
export const LIBRARY_SOURCE = buildSource();
