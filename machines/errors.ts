/**
 * How machines read the errors their invoked actors reject with. An error
 * object with `transient: true` (a dropped link, a busy Redis) is retried by
 * the machine itself; anything else is left unhandled so that the actor fails
 * and its supervisor decides.
 */
export function isTransientError(event: unknown): boolean {
  const err = (event as { error?: unknown }).error;
  return typeof err === 'object' && err !== null && (err as { transient?: unknown }).transient === true;
}

export function errorText(event: unknown): string {
  const err = (event as { error?: unknown }).error;
  return err instanceof Error ? err.message : String(err);
}
