import { describe, expect, it } from 'vitest';
import { setReportSink, startAll } from '../../runtime/reporter.js';

describe('startAll', () => {
  it('gives back every stop, in order, when all start', async () => {
    const stops = [async () => {}, async () => {}];
    await expect(startAll([Promise.resolve(stops[0]!), Promise.resolve(stops[1]!)], { source: 'test' })).resolves.toEqual(stops);
  });

  it('stops the ones that started when one fails, reports a failing stop, and throws the first failure', async () => {
    const stopped: string[] = [];
    const reported: unknown[] = [];
    const restore = setReportSink((e) => reported.push(e));
    try {
      const starts = [
        Promise.resolve(async () => {
          stopped.push('a');
        }),
        Promise.reject(new Error('b failed')),
        Promise.resolve(async () => {
          stopped.push('c');
          throw new Error('c would not stop');
        }),
        Promise.reject(new Error('d failed')),
      ];
      await expect(startAll(starts, { source: 'test' })).rejects.toThrow('b failed');
      expect(stopped).toEqual(['a', 'c']);
      expect(reported.map((e) => (e as Error).message)).toEqual(['c would not stop']);
    } finally {
      restore();
    }
  });
});
