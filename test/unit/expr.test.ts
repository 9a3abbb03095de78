import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compileExpr, ExprError } from '../../runtime/expr.js';

type Tree = { op: '+' | '-' | '*' | 'max' | '?'; a: Tree; b: Tree; c?: Tree } | { n: number } | { ref: 'x' | 'y' };

const tree = fc.letrec<{ t: Tree }>((tie) => ({
  t: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ n: fc.integer({ min: -50, max: 50 }) }),
    fc.record({ ref: fc.constantFrom('x' as const, 'y' as const) }),
    fc.record({ op: fc.constantFrom('+' as const, '-' as const, '*' as const, 'max' as const), a: tie('t'), b: tie('t') }),
    fc.record({ op: fc.constant('?' as const), a: tie('t'), b: tie('t'), c: tie('t') }),
  ),
})).t;

function text(t: Tree): string {
  if ('n' in t) return t.n < 0 ? `(${t.n})` : String(t.n);
  if ('ref' in t) return t.ref;
  if (t.op === 'max') return `max(${text(t.a)}, ${text(t.b)})`;
  if (t.op === '?') return `(${text(t.a)} > 0 ? ${text(t.b)} : ${text(t.c!)})`;
  return `(${text(t.a)} ${t.op} ${text(t.b)})`;
}

function reference(t: Tree, env: { x: number; y: number }): number {
  if ('n' in t) return t.n;
  if ('ref' in t) return env[t.ref];
  const a = reference(t.a, env);
  if (t.op === '?') return a > 0 ? reference(t.b, env) : reference(t.c!, env);
  const b = reference(t.b, env);
  return t.op === '+' ? a + b : t.op === '-' ? a - b : t.op === '*' ? a * b : Math.max(a, b);
}

describe('calculation expressions', () => {
  it('property: compiled expressions agree with a reference evaluator', () => {
    fc.assert(
      fc.property(tree, fc.integer({ min: -20, max: 20 }), fc.integer({ min: -20, max: 20 }), (t, x, y) => {
        const e = compileExpr(text(t));
        expect(e.evaluate((r) => (({ x, y }) as Record<string, number>)[r])).toBe(reference(t, { x, y }));
      }),
      { numRuns: 300 },
    );
  });

  it('knows its references, same-model and cross-model', () => {
    expect(compileExpr('sqrt(P^2 + Q^2) + pv1.P').refs).toEqual(['P', 'Q', 'pv1.P']);
    expect(compileExpr('2^3^2').evaluate(() => 0)).toBe(512);
  });

  it('gives NaN, not a throw, when an input has no value', () => {
    expect(compileExpr('a + 1').evaluate(() => undefined)).toBeNaN();
  });

  it.each([
    ['this', 'ThisExpression is not allowed'],
    ['"text"', 'only numbers are allowed'],
    ['a[0]', 'a reference is `name` or `model.name`'],
    ['eval(1)', "unknown function 'eval'"],
    ['max()', 'max() takes 1 to 64 argument(s), not 0'],
    ['a = 1', 'Unexpected "="'],
    ['a; b', 'one expression only'],
    ['x & 1', 'Unexpected "&"'],
  ])('rejects %s', (src, msg) => {
    expect(() => compileExpr(src)).toThrow(ExprError);
    expect(() => compileExpr(src)).toThrow(msg);
  });
});
