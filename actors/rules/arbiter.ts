/**
 * Arbitration between rules, one per process (shared by the rule actors of a
 * site): which active rules claim which control, and when each control was
 * last commanded. Among the active rules that target one control, the highest
 * priority wins (ties: the smaller rule id), and a control is commanded at most
 * once per `minIntervalMs`, so that no rule can hammer a device.
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

export type Verdict = { readonly send: true } | { readonly send: false; readonly why: 'overridden' | 'rate-limited'; readonly by?: string };

export class Arbiter {
  /** control (`model.name`) → rule id → its claim while the rule is active. */
  private readonly claims = new Map<string, Map<string, Claim>>();
  private readonly lastSent = new Map<string, number>();

  claim(control: string, claim: Claim): void {
    let m = this.claims.get(control);
    if (!m) this.claims.set(control, (m = new Map()));
    m.set(claim.rule, claim);
  }

  release(control: string, rule: string): void {
    this.claims.get(control)?.delete(rule);
  }

  /** Whether `rule` may command `control` now; if so, the send is counted against the rate limit. */
  decide(control: string, claim: Claim, minIntervalMs: number, now: number): Verdict {
    const others = this.claims.get(control);
    const winner = pickWinner([claim, ...(others?.values() ?? [])]);
    if (winner && winner.rule !== claim.rule) return { send: false, why: 'overridden', by: winner.rule };
    const last = this.lastSent.get(control);
    if (last !== undefined && now - last < minIntervalMs) return { send: false, why: 'rate-limited' };
    this.lastSent.set(control, now);
    return { send: true };
  }

  /** When `control` was last commanded (undefined: never), to hand to `withdraw`. */
  lastSentAt(control: string): number | undefined {
    return this.lastSent.get(control);
  }

  /** Takes back a send that `decide` allowed and that did not happen (its step was not committed): `before` is lastSentAt before it. */
  withdraw(control: string, before: number | undefined): void {
    if (before === undefined) this.lastSent.delete(control);
    else this.lastSent.set(control, before);
  }
}
