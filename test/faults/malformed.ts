/**
 * Malformed API requests of mixed kinds (bad JSON, wrong types, unknown fields,
 * bodies over the limit, wrong methods, unknown paths and models, no or a wrong
 * token, path noise) against the fault site's model `inv` and its control
 * `limit`: shared by the fault test and the soak benchmark.
 */
export type Request = [method: string, path: string, headers: Record<string, string>, body: string | undefined];

export function malformedRequest(i: number, token: string, model = 'inv', control = 'limit'): Request {
  const auth = { authorization: `Bearer ${token}` };
  const json = { ...auth, 'content-type': 'application/json' };
  const controlPath = `/api/v1/models/${model}/controls/${control}`;
  const kinds: ReadonlyArray<() => Request> = [
    () => ['POST', controlPath, json, `{"value": ${i}`],
    () => ['POST', controlPath, json, '{"value":"high"}'],
    () => ['POST', controlPath, json, '{"value":1,"extra":true}'],
    () => ['POST', controlPath, json, JSON.stringify({ value: 1, pad: 'x'.repeat(70_000) })],
    () => ['POST', controlPath, json, '{"value":1e400}'],
    () => ['POST', `/api/v1/models/nope${i}/controls/${control}`, json, '{"value":1}'],
    () => ['DELETE', `/api/v1/models/${model}`, auth, undefined],
    () => ['GET', `/api/v1/${'x/'.repeat(i % 50)}%00%ff`, auth, undefined],
    () => ['GET', `/api/v1/models/${model}`, {}, undefined],
    () => ['GET', '/api/v1/channels', { authorization: `Bearer wrong-${i}` }, undefined],
    () => ['GET', `/api/v1/commands/${'9'.repeat(i % 300)}`, auth, undefined],
    () => ['PUT', '/health', {}, 'garbage'],
  ];
  return kinds[i % kinds.length]!();
}
