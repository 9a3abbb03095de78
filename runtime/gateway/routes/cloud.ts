/**
 * GET /api/v1/cloud: each cloud link with its counters (its actor's recorded
 * context, as /metrics shows them, and the parked stream's length).
 * GET /api/v1/cloud/{id}/refused?count=N: the newest parked messages (viewer).
 * POST /api/v1/cloud/{id}/refused/resend {fromSeq?, toSeq?} (operator, audited
 * in audit:commands): a request that the link sends its parked messages again
 * (actors/cloud/resend.ts); 202 with the request's id, whose outcome
 * GET /api/v1/cloud/{id}/resends/{request} tells; DELETE on it (operator,
 * audited) cancels it: the link ends it `cancelled` at its next step.
 * An audit that cannot be written is reported, never the request's answer.
 * The links are the actors `cloud/{id}` of the loaded site (site_load forgets
 * the actors of an earlier config); `voltage cloud` reads the same views.
 */
import type { ActorRecord } from '../../domain/actors.js';
import { z } from 'zod';
import { RESEND_ENDED, SeqRangeError, seqRange, seqRangeText, type ResendOutcome, type SeqRange } from '../../domain/cloudResend.js';
import type { ParkedEntry } from '../../redis/cloudParked.js';
import type { VoltageRedis } from '../../redis/voltageRedis.js';
import { settled } from '../../reporter.js';
import { ApiError, type Http } from '../http.js';

const ACTOR_PREFIX = 'cloud/';

/** POST …/refused/resend: no body or {} for every parked message. */
export const resendBody = z
  .strictObject({
    fromSeq: z.number().int().min(1).optional().describe('the first seq to send again (default: the lowest parked)'),
    toSeq: z.number().int().min(1).optional().describe('the last seq to send again, included (default: the highest parked)'),
  })
  .describe('no body, or {}: every parked message');
const REFUSED_DEFAULT = 100;
const REFUSED_MAX = 1_000;

/** A link's actor context as recorded (actors/cloud/CloudActor.ts summarize); unreadable: empty. */
export function linkContext(a: ActorRecord): Record<string, unknown> {
  try {
    return JSON.parse(a.context ?? '{}') as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** The cloud links among the actors, with their recorded contexts. */
export function cloudLinkActors(
  actors: readonly ActorRecord[],
): Array<{ readonly link: string; readonly actor: ActorRecord; readonly c: Record<string, unknown> }> {
  return actors.filter((a) => a.id.startsWith(ACTOR_PREFIX)).map((actor) => ({ link: actor.id.slice(ACTOR_PREFIX.length), actor, c: linkContext(actor) }));
}

export interface CloudLinkView {
  readonly id: string;
  readonly status: string;
  readonly state: string;
  /** The last seq the cloud acknowledged. */
  readonly seq: number;
  /** Messages the cloud acknowledged (this incarnation). */
  readonly sent: number;
  /** Messages sent again after a reconnect (this incarnation). */
  readonly resentAfterReconnect: number;
  readonly refused: number;
  /** Messages parked now (cloud:{id}:refused). */
  readonly parked: number;
  /** Parked messages the cloud took when sent again / refused again. */
  readonly unparked: number;
  readonly refusedAgain: number;
  readonly dropped: number;
  readonly notTaken: number;
  /** Outbox entries not yet acknowledged (unread and in flight). */
  readonly backlog: number;
  readonly lastRefusal: string | null;
  readonly lastError: string | null;
}

const num = (v: unknown) => (typeof v === 'number' ? v : Number(v ?? 0) || 0);
const text = (v: unknown) => (typeof v === 'string' ? v : null);

/** Every link of the loaded site with its counters, by id (from `actors` when the caller has listed them). */
export async function cloudLinkViews(redis: VoltageRedis, actors?: readonly ActorRecord[]): Promise<CloudLinkView[]> {
  const links = cloudLinkActors(actors ?? (await redis.actors.list())).sort((a, b) => a.link.localeCompare(b.link));
  return Promise.all(
    links.map(async ({ link, actor, c }) => {
      const [parked, counters] = await Promise.all([redis.cloud.parked.count(link), redis.cloud.counters(link)]);
      return {
        id: link,
        status: actor.status ?? 'unknown',
        state: actor.state ?? '',
        seq: num(c.seq),
        sent: num(c.published),
        resentAfterReconnect: num(c.resent),
        refused: counters.refused,
        parked,
        unparked: counters.unparked,
        refusedAgain: counters.refusedAgain,
        dropped: counters.dropped,
        notTaken: num(c.notTaken),
        backlog: num(c.lag),
        lastRefusal: counters.lastRefusal,
        lastError: text(c.lastError),
      };
    }),
  );
}

/** Throws a 404 unless the loaded site has this link. */
export async function knownLink(redis: VoltageRedis, link: string): Promise<void> {
  const [a] = await redis.actors.records([`${ACTOR_PREFIX}${link}`]);
  if (!a?.status) throw new ApiError(404, 'NOT_FOUND', `no cloud link '${link}' in the loaded site`);
}

/** Audits an operator's action on a link; a failure to write it is reported, not the action's. */
function audit(redis: VoltageRedis, action: string, link: string, who: string, outcome: 'accepted' | 'rejected', message: string): Promise<unknown> {
  return settled(redis.commands.auditAction(action, link, who, outcome, message), { source: 'cloud audit', link });
}

/** Runs `check`; an ApiError it throws is audited as rejected, then thrown. */
async function checked<T>(redis: VoltageRedis, action: string, link: string, who: string, check: () => Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (e) {
    if (e instanceof ApiError) await audit(redis, action, link, who, 'rejected', e.message);
    throw e;
  }
}

/** Records a resend request of a known link, audited; returns its id. Throws ApiError 404 (no such link). */
export async function requestResend(redis: VoltageRedis, link: string, range: SeqRange, who: string): Promise<string> {
  await checked(redis, 'cloud.resend', link, who, () => knownLink(redis, link));
  const id = await redis.cloud.parked.request(link, range, who);
  await audit(redis, 'cloud.resend', link, who, 'accepted', `${seqRangeText(range)}, request ${id}`);
  return id;
}

/**
 * Asks the link to cancel a resend request, audited; returns where it stands now. Throws ApiError 404 (no such link
 * or request) or 409 (it has already ended).
 */
export async function cancelResend(redis: VoltageRedis, link: string, request: string, who: string): Promise<ResendOutcome> {
  const o = await checked(redis, 'cloud.resend.cancel', link, who, async () => {
    await knownLink(redis, link);
    const found = /^\d+-\d+$/.test(request) ? await redis.cloud.parked.outcome(link, request) : undefined;
    if (!found) throw new ApiError(404, 'NOT_FOUND', `no resend request '${request}' of link '${link}' (ended ones are kept a day)`);
    if (RESEND_ENDED.has(found.state))
      throw new ApiError(409, 'ALREADY_ENDED', `resend request '${request}' of link '${link}' has already ended: ${found.state}`);
    return found;
  });
  await redis.cloud.parked.cancel(link, request, who);
  await audit(redis, 'cloud.resend.cancel', link, who, 'accepted', `request ${request}`);
  return o;
}

const parkedView = (p: ParkedEntry) => ({ id: p.id, seq: p.seq === '' ? null : Number(p.seq), topic: p.topic, reason: p.reason, payload: p.payload });

export function cloudRoutes(http: Http, redis: VoltageRedis): void {
  http.route('get', '/api/v1/cloud', 'viewer', async () => ({ status: 200, body: { links: await cloudLinkViews(redis) } }));

  http.route('get', '/api/v1/cloud/:id/refused', 'viewer', async ({ params, query }) => {
    const link = params[0]!;
    const raw = query.get('count');
    const count = raw === null ? REFUSED_DEFAULT : Number(raw);
    if (!Number.isInteger(count) || count < 1 || count > REFUSED_MAX)
      throw new ApiError(400, 'BAD_REQUEST', `count=${raw}: expected a whole number from 1 to ${REFUSED_MAX}`);
    await knownLink(redis, link);
    const [parked, messages] = await Promise.all([redis.cloud.parked.count(link), redis.cloud.parked.newest(link, count)]);
    return { status: 200, body: { link, parked, messages: messages.map(parkedView) } };
  });

  http.route('post', '/api/v1/cloud/:id/refused/resend', 'operator', async ({ params, body, caller }) => {
    const link = params[0]!;
    const who = caller?.name ?? 'unknown';
    let range: SeqRange;
    try {
      if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body)))
        throw new ApiError(400, 'BAD_REQUEST', 'the body must be a JSON object {fromSeq?, toSeq?}, or none');
      const parsed = resendBody.safeParse(body ?? {});
      if (!parsed.success) {
        const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
        if (parsed.error.issues.some((i) => i.code === 'unrecognized_keys')) throw new ApiError(400, 'BAD_REQUEST', issues);
        throw new SeqRangeError(issues);
      }
      range = seqRange(parsed.data.fromSeq ?? null, parsed.data.toSeq ?? null);
    } catch (e) {
      if (!(e instanceof SeqRangeError) && !(e instanceof ApiError)) throw e;
      await audit(redis, 'cloud.resend', link, who, 'rejected', e.message);
      throw e instanceof ApiError ? e : new ApiError(400, e.code, e.message);
    }
    const request = await requestResend(redis, link, range, who);
    return { status: 202, body: { link, request, state: 'requested', ...range } };
  });

  http.route('get', '/api/v1/cloud/:id/resends/:request', 'viewer', async ({ params }) => {
    const [link, request] = [params[0]!, params[1]!];
    await knownLink(redis, link);
    const o: ResendOutcome | undefined = /^\d+-\d+$/.test(request) ? await redis.cloud.parked.outcome(link, request) : undefined;
    if (!o) throw new ApiError(404, 'NOT_FOUND', `no resend request '${request}' of link '${link}' (ended ones are kept a day)`);
    return { status: 200, body: { link, ...o } };
  });

  http.route('delete', '/api/v1/cloud/:id/resends/:request', 'operator', async ({ params, caller }) => {
    const [link, request] = [params[0]!, params[1]!];
    const o = await cancelResend(redis, link, request, caller?.name ?? 'unknown');
    return { status: 202, body: { link, request, state: o.state, cancel: 'requested' } };
  });
}
