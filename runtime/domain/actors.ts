/** An actor's state as the registry writes it to `actor:{id}` and `voltage status` reads it back. */

/** Fields reported for one actor (state, status, restarts, context as JSON, …). */
export type ActorFields = Readonly<Record<string, string | number>>;

/** One actor's hash as stored, its id included; every field a string, as Redis keeps it. */
export type ActorRecord = Readonly<Record<string, string>> & { readonly id: string };

/** One entry of an actor's transitions journal. */
export interface TransitionEntry {
  readonly ts: number;
  /** The event type ('xstate.after.…', 'channel.polled'), or what the supervisor did: 'failed', 'backoff', 'started'. */
  readonly event: string;
  /** State values as JSON ('"polling"', '{"ready":"idle"}'); '' when not known. */
  readonly from: string;
  readonly to: string;
  readonly error?: string;
}
