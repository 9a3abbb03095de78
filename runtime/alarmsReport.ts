/**
 * `voltage alarms [--active]`: the site's alarms as the API lists them, one line
 * each (state, severity, since, message, group), read from Redis like `voltage status`.
 */
import { errorMessage } from './errors.js';
import { alarmView, type AlarmView } from './gateway/routes/alarms.js';
import { createLogger } from './logger.js';
import { openRedis, readyWithin } from './redis/connect.js';
import { AlarmsRedis } from './redis/alarms.js';
import { RedisCore } from './redis/core.js';
import { textTable } from './textTable.js';

export function alarmsText(views: readonly AlarmView[], now: number = Date.now()): string {
  if (views.length === 0) return 'no alarms\n';
  const rows = views.map((v) => [
    v.id,
    v.state,
    v.severity,
    `${Math.round((now - v.since) / 1000)}s`,
    v.message,
    [v.group && v.group !== v.id ? `after ${v.group}` : '', v.chattering ? 'chattering' : ''].filter(Boolean).join(', '),
  ]);
  const head = ['ALARM', 'STATE', 'SEVERITY', 'FOR', 'MESSAGE', 'NOTES'];
  return textTable(head, rows);
}

/** Prints the alarms (only the active ones with `activeOnly`); exit code 0, or 2 when Redis cannot be read. */
export async function alarmsCommand(url: string, activeOnly: boolean): Promise<number> {
  const log = createLogger('error');
  const client = openRedis(url, log, 'alarms');
  try {
    await readyWithin(client, url, 5_000);
    const views = (await new AlarmsRedis(RedisCore.of(client), { outboxMaxMB: 1 }).list()).map(alarmView); // reads only: the bound is not used
    process.stdout.write(alarmsText(activeOnly ? views.filter((v) => v.active) : views));
    return 0;
  } catch (e) {
    process.stderr.write(`voltage alarms: ${errorMessage(e)}\n`);
    return 2;
  } finally {
    client.disconnect();
  }
}
