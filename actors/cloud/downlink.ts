/**
 * Messages from the cloud to a link: commands on `{prefix}/cmd` (only with
 * downlink.commands: true, a security decision) and snapshot requests on
 * `{prefix}/read`.
 *
 * A command `{id, model, name, value, timeoutMs?}` goes through m2c with the
 * source `cloud:{link}`, exactly as an operator's: validated and audited by the
 * Functions library, tracked to its end. Its result is published (QoS 1) to
 * `{prefix}/cmd/{id}/result` as `{id, command?, status, message, readback?}`
 * with status confirmed | failed | timeout | rejected | error. A message that is
 * not a command, or one past the link's rate (10 a second, bursts of 20),
 * gets `error`; one m2c refuses gets `rejected`; neither writes a command.
 * A command id is remembered for 24 h (`cloud:{link}:cmd:{id}`): the same id
 * again (a QoS 1 redelivery, a cloud that retries) runs nothing and is
 * answered with the first one's result, followed to its end if it is still
 * running (also after a restart of the runtime).
 * A read `{id?, models: [...]}` is answered on `{prefix}/read/result` with
 * `{id, ts, models: {model: {name: value}}, quality?: {model: {name: q}}, unknown?: [model]}`
 * (the ids the site has no model of are listed in `unknown`, not answered empty).
 */
import type { Logger } from '../../runtime/logger.js';
import { m2cRefusal } from '../../runtime/redis/commands.js';
import { KEYS } from '../../runtime/redis/keys.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import type { linkTopics } from './messages.js';

const COMMAND_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const RESULT_POLL_MS = 50;
/** A command id is remembered this long: a redelivery within it runs nothing again. */
export const COMMAND_ID_TTL_MS = 24 * 3_600_000;
/** What a command id holds while its command runs: this, then the command's id. */
const PENDING = 'command ';
/** Commands from one link: a token bucket, as the gateway limits an operator's token. */
const RATE_PER_S = 10;
const BURST = 20;

export interface DownlinkOptions {
  readonly link: string;
  readonly commands: boolean;
  readonly read: boolean;
  readonly maxTimeoutMs: number;
}

export type Publish = (topic: string, payload: string) => Promise<void>;

export interface CommandRequest {
  readonly id: string;
  readonly model: string;
  readonly name: string;
  readonly value: number;
  readonly timeoutMs: number;
}

/** The command in a message, or why it is not one. */
export function parseCommand(payload: string, maxTimeoutMs: number): CommandRequest | { readonly id: string; readonly error: string } {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return { id: 'invalid', error: 'the message is not JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return { id: 'invalid', error: 'a command is a JSON object {id, model, name, value, timeoutMs}' };
  const o = v as Record<string, unknown>;
  if (typeof o.id !== 'string' || !COMMAND_ID.test(o.id)) return { id: 'invalid', error: 'id must be 1–64 letters, digits, _, . or -' };
  const id = o.id;
  if (typeof o.model !== 'string' || o.model === '') return { id, error: 'model must be a model id' };
  if (typeof o.name !== 'string' || o.name === '') return { id, error: 'name must be a control of the model' };
  if (typeof o.value !== 'number' || !Number.isFinite(o.value)) return { id, error: 'value must be a finite number' };
  const timeoutMs = o.timeoutMs === undefined ? 10_000 : o.timeoutMs;
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > maxTimeoutMs) {
    return { id, error: `timeoutMs must be a whole number of ms from 1 to ${maxTimeoutMs}` };
  }
  return { id, model: o.model, name: o.name, value: o.value, timeoutMs };
}

export class CloudDownlink {
  private tokens = BURST;
  private refilledAt = Date.now();

  constructor(
    private readonly bus: VoltageRedis,
    private readonly opts: DownlinkOptions,
    private readonly topics: ReturnType<typeof linkTopics>,
    private readonly publish: Publish,
    private readonly log: Logger,
  ) {}

  /** The topics to subscribe to. */
  subscriptions(): string[] {
    return [...(this.opts.commands ? [this.topics.cmd] : []), ...(this.opts.read ? [this.topics.read] : [])];
  }

  /** Handles one message; never throws (a failure is logged and, for a command, answered). */
  async handle(topic: string, payload: string): Promise<void> {
    try {
      if (topic === this.topics.cmd && this.opts.commands) await this.command(payload);
      else if (topic === this.topics.read && this.opts.read) await this.read(payload);
    } catch (e) {
      this.log.warn({ topic, err: e }, 'cloud: a downlink message could not be answered');
    }
  }

  private async command(payload: string): Promise<void> {
    const source = `cloud:${this.opts.link}`;
    const parsed = parseCommand(payload, this.opts.maxTimeoutMs);
    const req = 'error' in parsed || this.take() ? parsed : { id: parsed.id, error: `more than ${RATE_PER_S} commands a second from this link; try again` };
    if ('error' in req) {
      await this.bus.commands.auditRejected(source, '', '', payload.slice(0, 200), req.error);
      await this.publish(this.topics.cmdResult(req.id), JSON.stringify({ id: req.id, status: 'error', message: req.error }));
      return;
    }
    // An id seen before (a QoS 1 redelivery, a cloud that sends again) runs nothing twice: it gets the first one's answer.
    const key = KEYS.cloudCommandId(this.opts.link, req.id);
    const prior = await this.bus.commands.claimRequest(key, COMMAND_ID_TTL_MS);
    if (prior !== undefined) {
      await this.again(req.id, prior);
      return;
    }
    let command: string;
    try {
      command = await this.bus.commands.m2c(req.model, req.name, req.value, source, req.timeoutMs);
    } catch (e) {
      const message = m2cRefusal(e);
      await this.bus.commands.auditRejected(source, req.model, req.name, req.value, message);
      await this.answer(req.id, { status: 'rejected', message });
      return;
    }
    await this.bus.commands.answerRequest(key, `${PENDING}${command}`);
    // The command's channel ends it by its deadline; the wait is bounded a little past it.
    await this.answer(req.id, await this.outcome(command, Date.now() + req.timeoutMs + 2_000));
  }

  /** A command id received again: the first one's answer, once it has one (nothing while its m2c is in flight). */
  private async again(id: string, prior: string): Promise<void> {
    this.log.info({ id, link: this.opts.link }, 'cloud: a command id received again; answered with the first one’s result, not run again');
    if (prior === '') return;
    if (!prior.startsWith(PENDING)) {
      await this.publish(this.topics.cmdResult(id), prior);
      return;
    }
    // Accepted and not answered (still running, or the runtime was restarted meanwhile): followed to its end.
    const command = prior.slice(PENDING.length);
    const rec = await this.bus.commands.command(command);
    await this.answer(id, await this.outcome(command, (rec?.deadline ?? Date.now()) + 2_000));
  }

  /** A command's answer: recorded under its id (what a repeat of the id gets), then published. */
  private async answer(id: string, result: Record<string, unknown>): Promise<void> {
    const json = JSON.stringify({ id, ...result });
    await this.bus.commands.answerRequest(KEYS.cloudCommandId(this.opts.link, id), json);
    await this.publish(this.topics.cmdResult(id), json);
  }

  /** Waits (bounded by `deadline`) for the command's end. */
  private async outcome(command: string, deadline: number): Promise<Record<string, unknown>> {
    for (;;) {
      const rec = await this.bus.commands.command(command);
      if (rec && rec.status !== 'pending') return { command, status: rec.status, message: rec.message, readback: rec.readback };
      if (Date.now() > deadline) return { command, status: 'timeout', message: 'no result by its deadline' };
      await new Promise((r) => setTimeout(r, RESULT_POLL_MS));
    }
  }

  private take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(BURST, this.tokens + ((now - this.refilledAt) / 1_000) * RATE_PER_S);
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private async read(payload: string): Promise<void> {
    let req: { id?: unknown; models?: unknown };
    try {
      req = JSON.parse(payload) as typeof req;
    } catch {
      req = {};
    }
    const id = typeof req.id === 'string' ? req.id : '';
    if (!Array.isArray(req.models) || !req.models.every((m) => typeof m === 'string')) {
      await this.publish(this.topics.readResult, JSON.stringify({ id, error: 'a read is {id, models: ["model", …]}' }));
      return;
    }
    const models: Record<string, Record<string, number | null>> = {};
    const quality: Record<string, Record<string, string>> = {};
    const asked = (req.models as string[]).slice(0, 100);
    const known = await this.bus.telemetry.knownModels(asked);
    const unknown = asked.filter((m) => !known.has(m));
    for (const m of asked.filter((x) => known.has(x))) {
      const values = await this.bus.telemetry.modelValues(m);
      models[m] = {};
      for (const [name, r] of values) {
        models[m][name] = r.value;
        if (r.quality && r.quality !== 'good') (quality[m] ??= {})[name] = r.quality;
      }
    }
    await this.publish(
      this.topics.readResult,
      JSON.stringify({ id, ts: Date.now(), models, ...(Object.keys(quality).length ? { quality } : {}), ...(unknown.length ? { unknown } : {}) }),
    );
  }
}
