/**
 * The `alarm:update` notes (one per commit of the site) routed to the alarm
 * actor that holds the alarm: one handler per subscriber connection, one parse
 * and one lookup per note. A handler per actor would run every actor's handler
 * for every commit (100 actors on a site of 100 models, ~330 commits a second
 * at 10,000 alarms: 33,000 calls a second to find one). Never touches the alarms.
 */
import { KEYS } from '../../runtime/redis/keys.js';
import type { Subscriptions } from '../../runtime/redis/subscriptions.js';

/** What an alarm actor reads of an `alarm:update` message. */
export interface AlarmNote {
  readonly id: string;
  readonly version: number;
  readonly who: unknown;
}

export type NoteHandler = (note: AlarmNote) => void;

export function parseNote(message: string): AlarmNote | undefined {
  try {
    const m = JSON.parse(message) as { id?: unknown; version?: unknown; who?: unknown };
    return typeof m.id === 'string' && typeof m.version === 'number' ? { id: m.id, version: m.version, who: m.who } : undefined;
  } catch {
    return undefined;
  }
}

class NoteRouter {
  private readonly byId = new Map<string, NoteHandler>();
  private subscribed: Promise<() => Promise<void>> | undefined;

  constructor(private readonly subs: Subscriptions) {}

  /** Routes the notes of these alarms to `handler` (a restarted actor takes them over); resolves once subscribed. */
  async add(ids: readonly string[], handler: NoteHandler): Promise<() => Promise<void>> {
    for (const id of ids) this.byId.set(id, handler);
    if (!this.subscribed) {
      const subscribing = this.subs.on(KEYS.alarmUpdate, (message) => {
        const note = parseNote(message);
        if (note) this.byId.get(note.id)?.(note);
      });
      this.subscribed = subscribing;
      // A subscription that failed is not kept: the next actor subscribes again.
      subscribing.catch(() => {
        if (this.subscribed === subscribing) this.subscribed = undefined;
      });
    }
    try {
      await this.subscribed;
    } catch (e) {
      for (const id of ids) if (this.byId.get(id) === handler) this.byId.delete(id);
      throw e;
    }
    return async () => {
      for (const id of ids) if (this.byId.get(id) === handler) this.byId.delete(id);
      const subscribed = this.subscribed;
      if (this.byId.size > 0 || !subscribed) return;
      this.subscribed = undefined;
      await (await subscribed)();
    };
  }
}

const routers = new WeakMap<Subscriptions, NoteRouter>();

/** Subscribes `handler` to the notes of the alarms `ids` on this subscriber connection; returns what unsubscribes it. */
export function onAlarmNotes(subs: Subscriptions, ids: readonly string[], handler: NoteHandler): Promise<() => Promise<void>> {
  let router = routers.get(subs);
  if (!router) {
    router = new NoteRouter(subs);
    routers.set(subs, router);
  }
  return router.add(ids, handler);
}
