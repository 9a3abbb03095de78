/**
 * Arbitration between rules, one per process (shared by the rule actors of a
 * site): which active rules claim which control, and when each control was
 * last commanded. Among the active rules that target one control, the highest
 * priority wins (ties: the smaller rule id), and a control is commanded at most
 * once per `minIntervalMs`, so that no rule can hammer a device.
 *
 * A command held back by that interval is deferred, not dropped: the latest one
 * per control is due once the interval since the control's last command has
 * passed (`at`), and is sent then (`due`) if no later decision for the control
 * (a send, or a newer deferral by any rule) superseded it and its rule still
 * wins among the claims active then plus itself. The caller owns the timer and
 * the send; the clock is whatever `now` it passes (pure, testable).
 * It never sends anything itself; it only answers.
 */

export interface Claim {
  readonly rule: string;
  readonly priority: number;
}

/** The winner among claims: highest priority, then the smallest rule id (a total order: every claimant agrees). */
export function pickWinner(claims: Iterable<Claim>): Claim | undefined {
  let best: Claim | undefined;
  for (const c of claims) {
    if (!best || c.priority > best.priority || (c.priority === best.priority && c.rule < best.rule)) best = c;
  }
  return best;
}

export type Verdict =
  | { readonly send: true }
  | { readonly send: false; readonly why: 'overridden'; readonly by: string }
  /** Held back by the rate limit: due at `at`, to be asked again then with `due(control, token, …)`. */
  | { readonly send: false; readonly why: 'deferred'; readonly at: number; readonly token: number };

/** What became of a deferral when it came due: sent now, or not (superseded by a later decision, or a higher claim won). */
export type DueVerdict =
  | { readonly send: true }
  | { readonly send: false; readonly why: 'superseded' }
  | { readonly send: false; readonly why: 'overridden'; readonly by: string };

interface Pending {
  readonly claim: Claim;
  readonly at: number;
  readonly token: number;
  readonly minIntervalMs: number;
}

/** A control's arbitration state before a decision, to hand back to `withdraw` when the decision did not happen. */
export interface Mark {
  readonly last: number | undefined;
  readonly pending: Pending | undefined;
}

export class Arbiter {
  /** control (`model.name`) → rule id → its claim while the rule is active. */
  private readonly claims = new Map<string, Map<string, Claim>>();
  private readonly lastSent = new Map<string, number>();
  /** control → its latest deferred command (at most one: a newer decision supersedes it). */
  private readonly pending = new Map<string, Pending>();
  private tokens = 0;

  claim(control: string, claim: Claim): void {
    let m = this.claims.get(control);
    if (!m) this.claims.set(control, (m = new Map()));
    m.set(claim.rule, claim);
  }

  release(control: string, rule: string): void {
    this.claims.get(control)?.delete(rule);
  }

  private winner(control: string, claim: Claim): Claim | undefined {
    return pickWinner([claim, ...(this.claims.get(control)?.values() ?? [])]);
  }

  /**
   * Whether `rule` may command `control` now; if so, the send is counted against the rate limit. A command
   * held back by the rate limit is deferred (and supersedes the control's earlier deferral, if any); a send
   * supersedes it too.
   */
  decide(control: string, claim: Claim, minIntervalMs: number, now: number): Verdict {
    const winner = this.winner(control, claim);
    if (winner && winner.rule !== claim.rule) return { send: false, why: 'overridden', by: winner.rule };
    const last = this.lastSent.get(control);
    if (last !== undefined && now - last < minIntervalMs) {
      const p: Pending = { claim, at: last + minIntervalMs, token: ++this.tokens, minIntervalMs };
      this.pending.set(control, p);
      return { send: false, why: 'deferred', at: p.at, token: p.token };
    }
    this.lastSent.set(control, now);
    this.pending.delete(control);
    return { send: true };
  }

  /**
   * The deferral `token` of `control` come due (`now` ≥ its `at`): sent now (counted against the rate limit)
   * if it is still the control's latest decision and its rule wins among the active claims plus its own;
   * otherwise dropped, saying why. Asked early (before `at`), it is not sent and stays pending: `superseded`
   * is answered only for a token no longer pending.
   */
  due(control: string, token: number, now: number): DueVerdict | undefined {
    const p = this.pending.get(control);
    if (!p || p.token !== token) return { send: false, why: 'superseded' };
    const last = this.lastSent.get(control);
    if (now < p.at || (last !== undefined && now - last < p.minIntervalMs)) return undefined;
    this.pending.delete(control);
    const winner = this.winner(control, p.claim);
    if (winner && winner.rule !== p.claim.rule) return { send: false, why: 'overridden', by: winner.rule };
    this.lastSent.set(control, now);
    return { send: true };
  }

  /** When the deferral `token` of `control` is due (undefined: it is no longer pending). */
  dueAt(control: string, token: number): number | undefined {
    const p = this.pending.get(control);
    return p && p.token === token ? p.at : undefined;
  }

  /** Drops the deferral `token` of `control` if it is still pending (its rule stopped: nobody will send it). */
  cancel(control: string, token: number): void {
    if (this.pending.get(control)?.token === token) this.pending.delete(control);
  }

  /** When `control` was last commanded (undefined: never). */
  lastSentAt(control: string): number | undefined {
    return this.lastSent.get(control);
  }

  /** The state of `control` before a decision, to hand to `withdraw`. */
  mark(control: string): Mark {
    return { last: this.lastSent.get(control), pending: this.pending.get(control) };
  }

  /** Takes back a decision (a send or a deferral) that did not happen (its step was not committed): `before` is mark() before it. */
  withdraw(control: string, before: Mark): void {
    if (before.last === undefined) this.lastSent.delete(control);
    else this.lastSent.set(control, before.last);
    if (before.pending === undefined) this.pending.delete(control);
    else this.pending.set(control, before.pending);
  }
}
