/**
 * The rules' reading of model update notifications, one per process (shared
 * like the Arbiter): every rule of a model gets its notification in a row, and
 * the first one reads it for all of them, once, and only for the names some
 * rule of the process reads from that model (scanUpdate: a pass over the text,
 * no object of every value). The update read is kept until the next message
 * only: a notification of 100 values read by 10 rules leaves ~10 numbers, not a
 * parsed object of 100 held until the model's next poll (at 1,000 notifications
 * a second those objects outlived a young-generation GC and were promoted). A
 * message that is not plain is parsed in full (parseUpdate), as before.
 */
import type { ModelUpdate } from '../../machines/modelMachine.js';
import { NameSet, scanUpdate, type ScanTarget } from '../alarm/scanUpdate.js';
import { parseUpdate } from '../model/ModelActor.js';

/** What a rule reads of an update: the values and qualities of the names wanted from its model (others may be absent). */
export type RuleUpdate = Pick<ModelUpdate, 'ts' | 'values' | 'quality'>;

export class RuleUpdates {
  private readonly wanted = new Map<string, { names: Set<string>; target: ScanTarget }>();
  private last: { model: string; message: string; update: RuleUpdate | undefined } | undefined;
  private values: Record<string, number> = {};
  private quality: Record<string, string> | undefined;
  private readonly onValue = (name: string, v: number): void => {
    this.values[name] = v;
  };
  private readonly onQuality = (name: string, q: string): void => {
    (this.quality ??= {})[name] = q;
  };

  /** A rule reads these names of `model`'s updates. */
  want(model: string, names: Iterable<string>): void {
    const w = this.wanted.get(model);
    const all = new Set([...(w?.names ?? []), ...names]);
    if (w && all.size === w.names.size) return;
    this.wanted.set(model, { names: all, target: { names: new NameSet(all), onValue: this.onValue, onQuality: this.onQuality } });
    if (this.last?.model === model) this.last = undefined;
  }

  /** The update in `message` (of `model`) as far as the rules read it; undefined when it is not a model update. */
  read(model: string, message: string): RuleUpdate | undefined {
    const last = this.last;
    if (last && last.message === message && last.model === model) return last.update;
    const update = this.scan(model, message) ?? parseUpdate(model, message);
    this.last = { model, message, update };
    return update;
  }

  private scan(model: string, message: string): RuleUpdate | undefined {
    const w = this.wanted.get(model);
    if (!w) return undefined;
    this.values = {};
    this.quality = undefined;
    const head = scanUpdate(message, w.target);
    return head ? { ts: head.ts, values: this.values, quality: this.quality } : undefined;
  }
}
