/**
 * What came of the rules' executions (their commands' ends, the overridden and
 * deferred actions; later, what became of a deferred command: a second result
 * of the same execution), journaled in batches: one rule_record for every result
 * told within `delayMs` of the first, of any rule of the process, rather than one
 * call each. The results of a burst of fires (a value crossing a limit on many
 * models at once) are then written after it, in one call, instead of taking the
 * thread between its evaluations. One per process, shared like the Arbiter.
 */
import type { RuleResults, RulesRedis } from '../../runtime/redis/rules.js';

/** Long enough that the results of a burst of fires (~100 ms) go after it, short enough for a reader of the journal. */
export const RESULTS_DELAY_MS = 200;
/** A batch this large is written at once (one Lua call must stay short: it holds Redis). */
const MAX_BATCH = 200;

interface Waiting {
  readonly results: RuleResults;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

export class ResultsJournal {
  private batch: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly rules: Pick<RulesRedis, 'recordMany'>,
    private readonly delayMs = RESULTS_DELAY_MS,
  ) {}

  /** Resolves once the results are journaled; rejects when their batch's call failed (none of it was written). */
  add(results: RuleResults): Promise<void> {
    return new Promise((resolve, reject) => {
      this.batch.push({ results, resolve, reject });
      if (this.batch.length >= MAX_BATCH) void this.flush();
      else this.timer ??= setTimeout(() => void this.flush(), this.delayMs);
    });
  }

  /** Writes what waits now (a rule stopping); resolves when that call ended, rejected or not. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.batch.splice(0);
    if (batch.length === 0) return;
    try {
      await this.rules.recordMany(batch.map((w) => w.results));
      for (const w of batch) w.resolve();
    } catch (e) {
      for (const w of batch) w.reject(e);
    }
  }
}
