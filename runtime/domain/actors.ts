/** An actor's state as the registry writes it to `actor:{id}` and `voltage status` reads it back. */

/** Fields reported for one actor (state, status, restarts, context as JSON, …). */
export type ActorFields = Readonly<Record<string, string | number>>;

/** One actor's hash as stored, its id included; every field a string, as Redis keeps it. */
export type ActorRecord = Readonly<Record<string, string>> & { readonly id: string };
