/**
 * `voltage cloud [LINK] [--refused [--count N]] [--resend [FROM-TO]] [--timeout MS] [--cancel REQUEST]`:
 * the links' counters as GET /api/v1/cloud shows them, a link's parked
 * messages, or a request that the running link sends them again (recorded in
 * Redis as the gateway records it; the link does the sending, through its
 * own connection), waited for (bounded) and its outcome printed (exit 1 when
 * it failed or was cancelled, with why), or a request cancelled. Reads Redis
 * like `voltage alarms`; no MQTT client here.
 */
import { userInfo } from 'node:os';
import { seqRangeOfText, seqRangeText, SeqRangeError, ALL_SEQS, RESEND_ENDED, type ResendOutcome, type SeqRange } from './domain/cloudResend.js';
import { errorMessage } from './errors.js';
import { cancelResend, cloudLinkViews, knownLink, requestResend, type CloudLinkView } from './gateway/routes/cloud.js';
import { createLogger } from './logger.js';
import { openRedis, readyWithin } from './redis/connect.js';
import { VoltageRedis } from './redis/voltageRedis.js';
import { textTable } from './textTable.js';

export type CloudCommand =
  | { readonly kind: 'list'; readonly link: string | undefined }
  | { readonly kind: 'refused'; readonly link: string; readonly count: number }
  | { readonly kind: 'resend'; readonly link: string; readonly range: SeqRange; readonly timeoutMs: number }
  | { readonly kind: 'cancel'; readonly link: string; readonly request: string };

const REFUSED_DEFAULT = 20;
const RESEND_WAIT_MS = 60_000;
const POLL_MS = 200;

/** The arguments after `cloud` (positionals: LINK, then FROM-TO with --resend), or why they are wrong. */
export function parseCloudArgs(
  positionals: readonly string[],
  flags: { readonly refused?: boolean; readonly resend?: boolean; readonly cancel?: string; readonly count?: string; readonly timeout?: string },
): CloudCommand | { readonly error: string } {
  const [link, range, ...extra] = positionals;
  const actions = [flags.refused ? '--refused' : '', flags.resend ? '--resend' : '', flags.cancel !== undefined ? '--cancel' : ''].filter((a) => a !== '');
  if (actions.length > 1) return { error: `${actions.join(' and ')}: one at a time` };
  if (actions.length === 1 && !link) return { error: `${actions[0]} needs a LINK (voltage cloud LINK …)` };
  if (flags.cancel !== undefined) {
    if (range !== undefined) return { error: `unexpected argument '${range}'` };
    if (!/^\d+-\d+$/.test(flags.cancel))
      return { error: `--cancel ${flags.cancel}: expected a request's id (as --resend or the API printed it, e.g. 1733600000000-0)` };
    return { kind: 'cancel', link: link!, request: flags.cancel };
  }
  if (extra.length > 0 || (range !== undefined && !flags.resend)) return { error: `unexpected argument '${extra[0] ?? range}'` };
  if (flags.refused) {
    const count = Number(flags.count ?? REFUSED_DEFAULT);
    if (!Number.isInteger(count) || count < 1 || count > 1_000) return { error: `--count ${flags.count}: expected a whole number from 1 to 1000` };
    return { kind: 'refused', link: link!, count };
  }
  if (flags.count !== undefined) return { error: '--count goes with --refused' };
  if (flags.resend) {
    const timeoutMs = Number(flags.timeout ?? RESEND_WAIT_MS);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0) return { error: `--timeout ${flags.timeout}: expected a whole number of milliseconds` };
    try {
      return { kind: 'resend', link: link!, range: range === undefined ? ALL_SEQS : seqRangeOfText(range), timeoutMs };
    } catch (e) {
      if (e instanceof SeqRangeError) return { error: `--resend ${e.message}` };
      throw e;
    }
  }
  return { kind: 'list', link };
}

export function linksText(views: readonly CloudLinkView[]): string {
  if (views.length === 0) return 'no cloud links\n';
  const head = ['LINK', 'STATUS', 'STATE', 'SEQ', 'SENT', 'REFUSED', 'PARKED', 'UNPARKED', 'REFUSED-AGAIN', 'DROPPED', 'NOT-TAKEN', 'BACKLOG', 'LAST REFUSAL'];
  const rows = views.map((v) => [
    v.id,
    v.status,
    v.state.replace(/^"|"$/g, ''),
    ...[v.seq, v.sent, v.refused, v.parked, v.unparked, v.refusedAgain, v.dropped, v.notTaken, v.backlog].map(String),
    v.lastRefusal ?? '',
  ]);
  return textTable(head, rows);
}

function outcomeText(o: ResendOutcome, parked: number): string {
  return `resent ${o.resent} (taken by the cloud, no longer parked), refused again ${o.refused} (still parked); ${parked} parked now\n`;
}

/** What an ended request's outcome says, and its exit code (0 done, 1 failed or cancelled). */
export function endedText(id: string, o: ResendOutcome, parked: number): { readonly text: string; readonly code: number } {
  if (o.state === 'done') return { text: `request ${id}: done — ${outcomeText(o, parked)}`, code: 0 };
  const why = o.lastError ?? (o.state === 'failed' ? 'no reason recorded' : 'cancelled');
  return { text: `request ${id}: ${o.state} — ${why}; what it had not sent stays parked; so far ${outcomeText(o, parked)}`, code: 1 };
}

async function run(redis: VoltageRedis, cmd: CloudCommand): Promise<number> {
  if (cmd.kind === 'list') {
    const views = await cloudLinkViews(redis);
    if (cmd.link !== undefined && !views.some((v) => v.id === cmd.link)) {
      process.stderr.write(`voltage cloud: no cloud link '${cmd.link}' in the loaded site (links: ${views.map((v) => v.id).join(', ') || 'none'})\n`);
      return 2;
    }
    process.stdout.write(linksText(cmd.link === undefined ? views : views.filter((v) => v.id === cmd.link)));
    return 0;
  }
  if (cmd.kind === 'refused') {
    await knownLink(redis, cmd.link);
    const [parked, messages] = await Promise.all([redis.cloud.parked.count(cmd.link), redis.cloud.parked.newest(cmd.link, cmd.count)]);
    process.stdout.write(`${parked} message(s) parked by link '${cmd.link}'${parked > messages.length ? `, the newest ${messages.length}` : ''}:\n`);
    for (const m of messages) process.stdout.write(`  seq ${m.seq || '?'}  ${m.reason}  ${m.topic}  ${m.payload}\n`);
    return 0;
  }
  if (cmd.kind === 'cancel') {
    const o = await cancelResend(redis, cmd.link, cmd.request, `cli:${userInfo().username}`);
    process.stdout.write(`request ${cmd.request}: cancel asked (it was ${o.state}); the link ends it at its next step, what it has not sent stays parked\n`);
    return 0;
  }
  const id = await requestResend(redis, cmd.link, cmd.range, `cli:${userInfo().username}`);
  process.stdout.write(`request ${id}: link '${cmd.link}' sends ${seqRangeText(cmd.range)} again (out of order, with their original seqs)\n`);
  const deadline = Date.now() + cmd.timeoutMs;
  let o = await redis.cloud.parked.outcome(cmd.link, id);
  while (!(o && RESEND_ENDED.has(o.state)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    o = await redis.cloud.parked.outcome(cmd.link, id);
  }
  const parked = await redis.cloud.parked.count(cmd.link);
  if (!o || !RESEND_ENDED.has(o.state)) {
    process.stdout.write(
      `request ${id}: still ${o?.state ?? 'requested'} after ${Math.round(cmd.timeoutMs / 1000)} s — is the runtime running and the link online? It is kept and handled when the link is (voltage cloud ${cmd.link} --cancel ${id} cancels it); so far ${o ? outcomeText(o, parked) : '\n'}`,
    );
    return 1;
  }
  const ended = endedText(id, o, parked);
  process.stdout.write(ended.text);
  return ended.code;
}

/** Runs `voltage cloud …`; exit 0 done, 1 a resend failed, cancelled or not finished in time, 2 bad usage, an unknown link or request, a request already ended, or Redis unreachable. */
export async function cloudCommand(url: string, positionals: readonly string[], flags: Parameters<typeof parseCloudArgs>[1]): Promise<number> {
  const cmd = parseCloudArgs(positionals, flags);
  if ('error' in cmd) {
    process.stderr.write(
      `voltage cloud: ${cmd.error}\nusage: voltage cloud [LINK] [--refused [--count N]] [--resend [FROM-TO]] [--timeout MS] [--cancel REQUEST]\n`,
    );
    return 2;
  }
  const client = openRedis(url, createLogger('error'), 'cloud');
  try {
    await readyWithin(client, url, 5_000);
    return await run(new VoltageRedis(client, { outboxMaxMB: 1 }), cmd); // reads and one XADD: the outbox bound is not used
  } catch (e) {
    process.stderr.write(`voltage cloud: ${errorMessage(e)}\n`);
    return 2;
  } finally {
    client.disconnect();
  }
}
