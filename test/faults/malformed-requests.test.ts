/**
 * Fault: 1,000 malformed API requests of mixed kinds (bad JSON, wrong types,
 * unknown fields, bodies over the limit, wrong methods, unknown paths and
 * models, no or a wrong token, path noise).
 * Kept: every answer is a 4xx with a JSON error (no 5xx; Redis is up, so not
 * even 503), the gateway process's RSS stays flat, and a good request still
 * works after. Lost: nothing (none of them was accepted).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/servers.js';
import { malformedRequest } from './malformed.js';
import { TOKEN, useFaultRuntime } from './site.js';

const f = useFaultRuntime();
const t = f.t;

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const auth = { authorization: `Bearer ${TOKEN}` };

describe('fault: 1,000 malformed API requests', () => {
  it('all 4xx with a JSON error, the gateway RSS flat, a good request works after', { timeout: 30_000 }, async () => {
    const pid = JSON.parse((await t.raw.hget('actor:gateway', 'context')) ?? '{}').pid as number;
    const burst = async (n: number) => {
      const statuses = new Map<number, number>();
      for (let i = 0; i < n; i += 50) {
        await Promise.all(
          Array.from({ length: 50 }, async (_, j) => {
            const [method, path, headers, body] = malformedRequest(i + j, TOKEN);
            const r = await fetch(f.base + path, { method, headers, body, signal: AbortSignal.timeout(5_000) });
            const text = await r.text();
            statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
            expect(r.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
            expect(r.status, `${method} ${path}`).toBeLessThan(500);
            expect(JSON.parse(text).error.code, `${method} ${path}`).toMatch(/^[A-Z_]+$/);
          }),
        );
      }
      return statuses;
    };
    await burst(300); // warm-up: V8 and uWS grow their pools once
    const before = rssMb(pid);
    const statuses = await burst(1_000);
    const after = rssMb(pid);
    // A leak of one request's body and closures (≥ 16 kB each, the pad alone is 70 kB on 1/12 of them) over 1,000
    // requests is ≥ 16 MB; V8's own heap growth between two samples is a few MB.
    expect(after - before).toBeLessThan(16);
    expect([...statuses.keys()].every((s) => s >= 400 && s < 500)).toBe(true);
    // The token was rate-limited by the burst (429s above): a good request is accepted once its bucket refills.
    await eventually(
      async () =>
        (
          await fetch(`${f.base}/api/v1/models/inv/controls/limit`, {
            method: 'POST',
            headers: { ...auth, 'content-type': 'application/json' },
            body: '{"value":1}',
          })
        ).status === 202,
      10_000,
      250,
    );
  });
});
