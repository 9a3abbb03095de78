/**
 * The ends of the commands that rules sent, for their executions' journal.
 * One `cmd:result` subscription per subscriber connection tells each waiting
 * rule its command's end: the command is read at most twice (once shortly
 * after it was sent, in case its end was told before the rule waited for
 * it, and once at its deadline), where it was read every 50 ms until it
 * ended. A note missed while the connection was down is made up for by a read
 * of every waiting command when it is back. A wait holds one timer at a time
 * and a rule one abort listener for all its waits: a burst of fires makes a
 * hundred waits at once, on the thread the burst already fills.
 */
import type { CommandsRedis } from '../../runtime/redis/commands.js';
import { KEYS } from '../../runtime/redis/keys.js';
import type { Subscriptions } from '../../runtime/redis/subscriptions.js';

/** The first read: a command just accepted has not reached its device yet (a read at once never found an end). */
const FIRST_READ_MS = 50;

type Settle = (status: string) => void;

export class CommandEnds {
  private readonly waiting = new Map<string, Set<Settle>>();
  private readonly aborts = new WeakMap<AbortSignal, Set<Settle>>();
  /** Resolves once Redis confirmed the subscription. */
  readonly ready: Promise<unknown>;

  constructor(
    subs: Subscriptions,
    private readonly commands: Pick<CommandsRedis, 'command'>,
  ) {
    // A note is `<id> <status>` (cmd_result in lua/commands.lua).
    this.ready = subs.on(KEYS.commandResult, (message) => {
      const sp = message.indexOf(' ');
      if (sp > 0) this.settle(message.slice(0, sp), message.slice(sp + 1));
    });
    const removeReconnect = subs.onReconnect(() => {
      for (const id of this.waiting.keys()) void this.read(id);
    });
    // One whose subscription failed is dropped (commandEnds below makes another): its listener must go with it,
    // or the shared connection keeps one per failed start.
    this.ready.catch(removeReconnect);
  }

  /** The command's end, or 'pending' when it has none within `ms` or `signal` aborts first. */
  wait(id: string, ms: number, signal: AbortSignal): Promise<string> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve('pending');
      const aborts = this.abortsOf(signal);
      const first = Math.min(FIRST_READ_MS, ms);
      // One timer at a time: the first read, then the deadline's (a note settles most commands before either).
      let timer = setTimeout(() => {
        void this.read(id);
        timer = setTimeout(() => void this.read(id).then(() => settle('pending')), ms - first);
      }, first);
      const settle: Settle = (status) => {
        clearTimeout(timer);
        aborts.delete(settle);
        const set = this.waiting.get(id);
        set?.delete(settle);
        if (set?.size === 0) this.waiting.delete(id);
        resolve(status);
      };
      aborts.add(settle);
      const set = this.waiting.get(id) ?? new Set<Settle>();
      set.add(settle);
      this.waiting.set(id, set);
    });
  }

  /** The waiters of one signal (one rule's), all given 'pending' by its one abort listener: none per command. */
  private abortsOf(signal: AbortSignal): Set<Settle> {
    let set = this.aborts.get(signal);
    if (!set) {
      const made = new Set<Settle>();
      signal.addEventListener('abort', () => {
        for (const s of [...made]) s('pending');
      });
      this.aborts.set(signal, made);
      set = made;
    }
    return set;
  }

  /** Reads the command and settles its waiters if it has ended; a failed read leaves them waiting. */
  private async read(id: string): Promise<void> {
    if (!this.waiting.has(id)) return;
    try {
      const c = await this.commands.command(id);
      if (c && c.status !== 'pending') this.settle(id, c.status);
    } catch {
      // Redis unreachable: the note, the reconnect's read or the deadline's settles it.
    }
  }

  private settle(id: string, status: string): void {
    const set = this.waiting.get(id);
    if (!set) return;
    for (const s of [...set]) s(status);
  }
}

const bySubscriptions = new WeakMap<Subscriptions, CommandEnds>();

/** The one CommandEnds of a subscriber connection (every rule actor of the process shares it). */
export function commandEnds(subs: Subscriptions, commands: Pick<CommandsRedis, 'command'>): CommandEnds {
  let ends = bySubscriptions.get(subs);
  if (!ends) {
    const made = new CommandEnds(subs, commands);
    bySubscriptions.set(subs, made);
    // One whose subscription failed is not kept: the next rule actor makes another.
    made.ready.catch(() => {
      if (bySubscriptions.get(subs) === made) bySubscriptions.delete(subs);
    });
    ends = made;
  }
  return ends;
}
