/**
 * The alarm Functions on their own: lua/alarms.lua (generated tables filled in)
 * with the shared helpers it uses, taken verbatim from the other files of lua/,
 * loaded as a private library into a private redis-server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { alarmLuaModule } from '../../runtime/redis/alarmLibrary.js';
import { rawClient, spawnRedis, type RedisServer } from './servers.js';

const LUA_DIR = fileURLToPath(new URL('../../lua/', import.meta.url));
const SHARED_HELPERS = ['fail', 'positive_int'];

/** `local function NAME(...) ... end` (the `end` at column 0) from whichever lua/ file defines it. */
function sharedHelper(name: string): string {
  for (const file of readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua') && f !== 'alarms.lua').sort()) {
    const text = readFileSync(LUA_DIR + file, 'utf8');
    const m = new RegExp(`^local function ${name}\\(.*?^end$`, 'ms').exec(text);
    if (m) return m[0];
  }
  throw new Error(`no lua/ file defines local function ${name}`);
}

export function alarmTestLibrary(): string {
  return ['#!lua name=alarmtest', ...SHARED_HELPERS.map(sharedHelper), alarmLuaModule()].join('\n\n');
}

export interface AlarmRedis {
  readonly server: RedisServer;
  readonly client: Redis;
  stop(): Promise<void>;
}

export async function startAlarmRedis(): Promise<AlarmRedis> {
  const server = await spawnRedis();
  const client = rawClient(server);
  await client.call('FUNCTION', 'LOAD', 'REPLACE', alarmTestLibrary());
  return {
    server,
    client,
    async stop() {
      client.disconnect();
      await server.stop();
    },
  };
}
