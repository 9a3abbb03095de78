/**
 * Rules in Redis: each rule's committed state (`rule:{id}`, compare-and-set on
 * its version through rule_commit), its counters (`rule:stats:{id}`) and the
 * bounded journal of executions (`rule:executions`), as the rule actor, the API
 * and `voltage rules` read them. A refused commit (someone committed first, an
 * operator disabled the rule) comes back as a RuleConflictError, upon which the
 * actor reads the rule again.
 */
import type { RuleContext, RuleSnapshotData, RuleState } from '../../machines/ruleMachine.js';
import type { ActorFields, TransitionEntry } from '../domain/actors.js';
import { RedisFunctionError, VoltageError } from '../errors.js';
import { redisCall, type RedisCore } from './core.js';
import { TRANSITIONS_MAXLEN } from './actors.js';
import { fieldsOf } from './encoding.js';
import { KEYS } from './keys.js';
import type { CommandsRedis } from './commands.js';
import type { OutboxLimits } from './telemetry.js';

/** rule_commit refused: nothing was written; `version` is what Redis holds now. */
export class RuleConflictError extends VoltageError {
  readonly version: number;
  constructor(message: string, version: number, options?: { cause?: unknown }) {
    super('redis', 'RULE_CONFLICT', message, { version }, options);
    this.name = 'RuleConflictError';
    this.version = version;
  }
}

export interface StoredRule extends RuleSnapshotData {
  readonly version: number;
  /** A sequence rule's progress as committed (JSON, field `sequence`), '' when none. */
  readonly sequence: string;
}

export interface RuleRecord extends StoredRule {
  readonly id: string;
  readonly since: number;
  readonly updatedAt: number;
  readonly who: string;
  readonly definition: unknown;
  readonly stats: Readonly<Record<string, number>>;
}

export interface RuleJournalEntry {
  readonly entryId: string;
  readonly id: string;
  readonly kind: 'execution' | 'result';
  readonly time: number;
  readonly data: unknown;
  readonly fields: Readonly<Record<string, string>>;
}

export interface RuleCommit {
  readonly id: string;
  readonly expectedVersion: number;
  readonly to: RuleSnapshotData;
  readonly ts: number;
  /** `rule/{id}` for the actor, the operator's name for enable and disable. */
  readonly who: string;
  /** The execution to journal with the step (trigger, inputs, condition, actions), or undefined. */
  readonly execution?: unknown;
  /** A counter of rule:stats:{id} to increment with the step (`fires`, `blocked`), or ''. */
  readonly counter?: string;
  /** A sequence rule's progress to store with the step (JSON; '' removes it); undefined leaves it as stored. */
  readonly sequence?: string;
  /**
   * Control commands of the execution, sent by m2c in the same call once the step is written (one round trip,
   * not queued again behind other calls), with source `rule:{id}`; a command m2c refuses does not undo the step.
   */
  readonly commands?: readonly RuleCommand[];
  /** How long the commands may take before they end as timeout (ms; default 10 s). */
  readonly commandTimeoutMs?: number;
  /** The rule actor's report of the step (`actor:{id}` and its transitions journal), written by the same call. */
  readonly report?: { readonly actor: string; readonly fields: ActorFields; readonly transition?: TransitionEntry };
}

/** What came of one execution's actions, for rule_record. */
export interface RuleResults {
  readonly id: string;
  /** The execution's entry id in rule:executions. */
  readonly of: string;
  readonly results: unknown;
  readonly counters: Readonly<Record<string, number>>;
  readonly ts: number;
}

export interface RuleCommand {
  readonly model: string;
  readonly name: string;
  readonly value: number;
}

/** What became of a command sent with a step: its id, or m2c's refusal (`m2c: …`, as m2c itself rejects). */
export type RuleCommandResult = { readonly commandId: string } | { readonly refused: string };

/** A rule's `notify` event as rule:events and the outbox carry it. */
export interface RuleNotification {
  readonly rule: string;
  readonly severity: string;
  readonly message: string;
  readonly time: number;
  /** The execution it belongs to (rule:executions entry id). */
  readonly execution: string;
}

export class RulesRedis {
  private readonly outboxMaxBytes: number;

  constructor(
    private readonly core: RedisCore,
    limits: OutboxLimits,
    private readonly commands: CommandsRedis,
  ) {
    this.outboxMaxBytes = Math.round(limits.outboxMaxMB * 2 ** 20);
  }

  /** A `notify` action: to rule:events and the outbox (the cloud links); resolves to the rule:events entry id. */
  async notify(n: RuleNotification): Promise<string> {
    return this.core.fcall('rule_notify', { id: n.rule, ts: n.time, event: JSON.stringify(n), outboxMaxBytes: this.outboxMaxBytes });
  }

  /** The newest notify events, newest first. */
  async events(count = 100): Promise<Array<RuleNotification & { entryId: string }>> {
    const entries = await redisCall('XREVRANGE', () => this.core.client.xrevrange(KEYS.ruleEvents, '+', '-', 'COUNT', count));
    return entries.map(([entryId, raw]) => ({ entryId, ...(JSON.parse(fieldsOf(raw).event ?? '{}') as RuleNotification) }));
  }

  /** Creates the rule in its initial state, or returns what is stored (a restart resumes from it). */
  async init(id: string, initial: RuleSnapshotData, definition: unknown, ts = Date.now()): Promise<StoredRule & { created: boolean }> {
    const [created, state, version, context, sequence] = await this.core.fcall('rule_init', {
      id,
      ts,
      state: initial.state,
      context: JSON.stringify(initial.context),
      definition: JSON.stringify(definition),
    });
    return {
      created: created === 1,
      state: state as RuleState,
      version: Number(version),
      context: JSON.parse(context) as RuleContext,
      sequence: sequence ?? '',
    };
  }

  /**
   * Commits one step and sends its commands; resolves to the new version, the journal entry's id ('' none) and
   * each command's id or refusal; rejects with RuleConflictError (nothing written, nothing sent).
   */
  async commit(c: RuleCommit): Promise<{ version: number; entryId: string; commands: RuleCommandResult[] }> {
    const commands = c.commands ?? [];
    const timeoutMs = c.commandTimeoutMs ?? 10_000;
    const source = `rule:${c.id}`;
    for (const x of commands) if (!Number.isFinite(x.value)) throw new RedisFunctionError('m2c', `value must be a finite number, got ${x.value}`);
    try {
      const [version, entryId, ...sent] = await this.core.fcall('rule_commit', {
        id: c.id,
        expectedVersion: c.expectedVersion,
        state: c.to.state,
        context: JSON.stringify(c.to.context),
        ts: c.ts,
        who: c.who,
        execution: c.execution === undefined ? '' : JSON.stringify(c.execution),
        counter: c.counter ?? '',
        ...(c.sequence === undefined ? {} : { sequence: c.sequence }),
        commands,
        source,
        timeoutMs,
        ...(c.report
          ? {
              report: {
                id: c.report.actor,
                fields: c.report.fields,
                ...(c.report.transition ? { transition: { entry: c.report.transition, maxLen: TRANSITIONS_MAXLEN } } : {}),
              },
            }
          : {}),
      });
      return {
        version: Number(version),
        entryId,
        commands: commands.map((x, i): RuleCommandResult => {
          const commandId = sent[2 * i] ?? '';
          if (!commandId) return { refused: `m2c: ${sent[2 * i + 1] || 'refused'}` };
          this.commands.remember(commandId, { ...x, source, createdAt: c.ts, deadline: c.ts + timeoutMs });
          return { commandId };
        }),
      };
    } catch (e) {
      const m = e instanceof RedisFunctionError ? /rule_commit: (VERSION_CONFLICT|NO_RULE) (.*) \[state=[\w-]+ version=(\d+)\]/.exec(e.message) : null;
      if (m) throw new RuleConflictError(`rule_commit: ${m[1]} ${m[2]}`, Number(m[3]), { cause: e });
      throw e;
    }
  }

  /** Journals what came of several executions (of any rules) in one call; resolves to their entry ids, in order. */
  async recordMany(records: readonly RuleResults[]): Promise<string[]> {
    if (records.length === 0) return [];
    return this.core.fcall('rule_record', {
      records: records.map((r) => ({ id: r.id, ts: r.ts, of: r.of, results: JSON.stringify(r.results), counters: r.counters })),
    });
  }

  /** One entry of rule:executions (an execution or a result), or undefined when trimmed. */
  async entry(entryId: string): Promise<RuleJournalEntry | undefined> {
    const [e] = await redisCall('XRANGE', () => this.core.client.xrange(KEYS.ruleExecutions, entryId, entryId));
    if (!e) return undefined;
    const f = fieldsOf(e[1]);
    return {
      entryId,
      id: f.id ?? '',
      kind: f.kind === 'result' ? 'result' : 'execution',
      time: Number(f.time),
      data: f.data ? (JSON.parse(f.data) as unknown) : null,
      fields: f,
    };
  }

  /** One notify event of rule:events, or undefined when trimmed. */
  async event(entryId: string): Promise<RuleNotification | undefined> {
    const [e] = await redisCall('XRANGE', () => this.core.client.xrange(KEYS.ruleEvents, entryId, entryId));
    return e ? (JSON.parse(fieldsOf(e[1]).event ?? '{}') as RuleNotification) : undefined;
  }

  /** The ids of every rule initialised since the site was loaded. */
  async ids(): Promise<string[]> {
    return (await redisCall('SMEMBERS', () => this.core.client.smembers(KEYS.rules))).sort();
  }

  /** What `rule:{id}` and its counters hold, or undefined when there is no such rule. */
  async read(id: string): Promise<RuleRecord | undefined> {
    const [h, stats] = await Promise.all([
      redisCall('HGETALL', () => this.core.client.hgetall(KEYS.rule(id))),
      redisCall('HGETALL', () => this.core.client.hgetall(KEYS.ruleStats(id))),
    ]);
    if (!h.state || !h.version || !h.context) return undefined;
    return {
      id,
      state: h.state as RuleState,
      version: Number(h.version),
      context: JSON.parse(h.context) as RuleContext,
      sequence: h.sequence ?? '',
      since: Number(h.since),
      updatedAt: Number(h.updatedAt),
      who: h.who ?? '',
      definition: h.definition ? (JSON.parse(h.definition) as unknown) : null,
      stats: Object.fromEntries(Object.entries(stats).map(([k, v]) => [k, Number(v)])),
    };
  }

  /** The last journal entries of one rule, newest first (a scan of the bounded stream). */
  async journal(id: string, count = 20, scan = 2_000): Promise<RuleJournalEntry[]> {
    const entries = await redisCall('XREVRANGE', () => this.core.client.xrevrange(KEYS.ruleExecutions, '+', '-', 'COUNT', scan));
    const out: RuleJournalEntry[] = [];
    for (const [entryId, raw] of entries) {
      const f = fieldsOf(raw);
      if (f.id !== id) continue;
      out.push({
        entryId,
        id,
        kind: f.kind === 'result' ? 'result' : 'execution',
        time: Number(f.time),
        data: f.data ? (JSON.parse(f.data) as unknown) : null,
        fields: f,
      });
      if (out.length >= count) break;
    }
    return out;
  }

  /** An operator's enable or disable, for the audit stream. */
  async audit(who: string, id: string, action: string, outcome: string): Promise<void> {
    await redisCall('XADD', () =>
      this.core.client.xadd(
        KEYS.ruleAudit,
        'MAXLEN',
        '~',
        '100000',
        '*',
        'who',
        who,
        'rule',
        id,
        'action',
        action,
        'outcome',
        outcome,
        'at',
        String(Date.now()),
      ),
    );
  }
}
