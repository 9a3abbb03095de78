/**
 * The calculation language of models: arithmetic, comparisons, logic, the
 * ternary `?:` and a fixed list of functions, over numbers only. Parsed by
 * jsep, compiled here into closures from a whitelist of node kinds; user text
 * is never handed to eval or Function. References are static (`P`, `pv1.P`),
 * so the dependency graph and its cycles are known at validate time.
 */
import jsep from 'jsep';
import { MAX_WINDOW_MS, WINDOW_FUNCTIONS, type WindowFn } from './domain/window.js';

jsep.removeBinaryOp('^');
jsep.addBinaryOp('^', 11, true);
jsep.removeBinaryOp('|');
jsep.removeBinaryOp('&');
jsep.removeBinaryOp('<<');
jsep.removeBinaryOp('>>');
jsep.removeBinaryOp('>>>');
jsep.removeUnaryOp('~');

const DURATION_UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const DURATION_TOKEN = /^(\d+(?:\.\d+)?)(ms|s|m|h)(?![A-Za-z0-9_$])/;
/** A duration literal (`60s`, `500ms`, `5m`, `1h`): a Literal of ms marked `duration`, allowed only as a window's length. */
jsep.hooks.add('gobble-token', function gobbleDuration(this: unknown, env: { context?: { index: number; expr: string }; node?: jsep.Expression }) {
  const ctx = env.context;
  if (!ctx) return;
  const m = DURATION_TOKEN.exec(ctx.expr.slice(ctx.index));
  if (!m) return;
  ctx.index += m[0].length;
  env.node = { type: 'Literal', value: Math.round(Number(m[1]) * DURATION_UNIT_MS[m[2]!]!), raw: m[0], duration: true };
});

export class ExprError extends Error {
  /** 0-based index into the expression text. */
  readonly index: number;
  constructor(message: string, index: number) {
    super(message);
    this.name = 'ExprError';
    this.index = index;
  }
}

const FUNCTIONS: Readonly<Record<string, { arity: [number, number]; fn: (...a: number[]) => number }>> = {
  abs: { arity: [1, 1], fn: Math.abs },
  sqrt: { arity: [1, 1], fn: Math.sqrt },
  exp: { arity: [1, 1], fn: Math.exp },
  ln: { arity: [1, 1], fn: Math.log },
  log10: { arity: [1, 1], fn: Math.log10 },
  floor: { arity: [1, 1], fn: Math.floor },
  ceil: { arity: [1, 1], fn: Math.ceil },
  round: { arity: [1, 2], fn: (x, d = 0) => Math.round(x * 10 ** d) / 10 ** d },
  min: { arity: [1, 64], fn: Math.min },
  max: { arity: [1, 64], fn: Math.max },
  pow: { arity: [2, 2], fn: Math.pow },
  clamp: { arity: [3, 3], fn: (x, lo, hi) => Math.min(hi, Math.max(lo, x)) },
};

export const FUNCTION_NAMES = Object.keys(FUNCTIONS);

export type Scope = (ref: string) => number | undefined;
/** A window function's value over a point's recent values (runtime/domain/window.ts); undefined: none kept. */
export type WindowScope = (fn: WindowFn, ref: string, ms: number) => number | undefined;
type Fn = (scope: Scope, windows?: WindowScope) => number;

/** One window function call in an expression: `avg(grid.P, 60s)` is {fn: avg, ref: grid.P, ms: 60000}. */
export interface WindowRef {
  readonly fn: WindowFn;
  readonly ref: string;
  readonly ms: number;
}

export interface CompileOptions {
  /** Window functions and duration literals are allowed (rules); elsewhere they are an error. */
  readonly windows?: boolean;
}

interface Compiling {
  readonly refs: Set<string>;
  readonly windows: WindowRef[];
  readonly source: string;
  readonly options: CompileOptions;
}

export interface CompiledExpr {
  readonly source: string;
  /** Every reference in the expression: `name` (same model) or `model.name`. */
  readonly refs: readonly string[];
  /** The window functions it calls (their points are in `refs` as well). */
  readonly windows: readonly WindowRef[];
  /** NaN when a reference has no value yet (or a window function has no samples). */
  evaluate(scope: Scope, windows?: WindowScope): number;
}

const bool = (b: boolean): number => (b ? 1 : 0);

const BINARY: Readonly<Record<string, (a: number, b: number) => number>> = {
  '+': (a, b) => a + b,
  '-': (a, b) => a - b,
  '*': (a, b) => a * b,
  '/': (a, b) => a / b,
  '%': (a, b) => a % b,
  '^': (a, b) => a ** b,
  '<': (a, b) => bool(a < b),
  '<=': (a, b) => bool(a <= b),
  '>': (a, b) => bool(a > b),
  '>=': (a, b) => bool(a >= b),
  '==': (a, b) => bool(a === b),
  '!=': (a, b) => bool(a !== b),
};

function nodeText(node: jsep.Expression): string {
  return node.type === 'Identifier' ? String(node.name) : node.type;
}

function compileNode(node: jsep.Expression, c: Compiling): Fn {
  const { refs, source } = c;
  switch (node.type) {
    case 'Literal': {
      const v = node.value;
      if (node.duration === true)
        throw new ExprError(
          c.options.windows
            ? `a duration (${String(node.raw)}) is only allowed as a window function's length, e.g. avg(grid.P, ${String(node.raw)})`
            : `a duration (${String(node.raw)}) is not a number; window functions belong in rules`,
          Math.max(0, source.indexOf(String(node.raw))),
        );
      if (typeof v !== 'number') throw new ExprError(`only numbers are allowed, not ${JSON.stringify(v)}`, source.indexOf(String(node.raw)));
      return () => v;
    }
    case 'Identifier':
    case 'MemberExpression': {
      const ref = refName(node, source);
      refs.add(ref);
      return (scope) => scope(ref) ?? Number.NaN;
    }
    case 'UnaryExpression': {
      const arg = compileNode(node.argument as jsep.Expression, c);
      switch (node.operator) {
        case '-':
          return (s, w) => -arg(s, w);
        case '+':
          return arg;
        case '!':
          return (s, w) => bool(!arg(s, w));
        default:
          throw new ExprError(`operator '${String(node.operator)}' is not allowed`, 0);
      }
    }
    case 'BinaryExpression': {
      const left = compileNode(node.left as jsep.Expression, c);
      const right = compileNode(node.right as jsep.Expression, c);
      const op = String(node.operator);
      if (op === '&&') return (s, w) => bool(left(s, w) !== 0 && right(s, w) !== 0);
      if (op === '||') return (s, w) => bool(left(s, w) !== 0 || right(s, w) !== 0);
      const f = BINARY[op];
      if (!f) throw new ExprError(`operator '${op}' is not allowed`, 0);
      return (s, w) => f(left(s, w), right(s, w));
    }
    case 'ConditionalExpression': {
      const test = compileNode(node.test as jsep.Expression, c);
      const yes = compileNode(node.consequent as jsep.Expression, c);
      const no = compileNode(node.alternate as jsep.Expression, c);
      return (s, w) => (test(s, w) !== 0 ? yes(s, w) : no(s, w));
    }
    case 'CallExpression': {
      const callee = node.callee as jsep.Expression;
      const fname = callee.type === 'Identifier' ? String(callee.name) : '';
      const callArgs = node.arguments as jsep.Expression[];
      const windowed = (WINDOW_FUNCTIONS as readonly string[]).includes(fname) && (!Object.hasOwn(FUNCTIONS, fname) || callArgs[1]?.duration === true);
      if (windowed) return compileWindow(fname as WindowFn, callArgs, c);
      const spec = Object.hasOwn(FUNCTIONS, fname) ? FUNCTIONS[fname] : undefined;
      if (!spec)
        throw new ExprError(`unknown function '${fname || nodeText(callee)}' (known: ${FUNCTION_NAMES.join(', ')})`, Math.max(0, source.indexOf(fname)));
      const args = callArgs.map((a) => compileNode(a, c));
      const [lo, hi] = spec.arity;
      if (args.length < lo || args.length > hi)
        throw new ExprError(`${fname}() takes ${lo === hi ? lo : `${lo} to ${hi}`} argument(s), not ${args.length}`, source.indexOf(fname));
      const fn = spec.fn;
      return (s, w) => fn(...args.map((a) => a(s, w)));
    }
    default:
      throw new ExprError(`${node.type} is not allowed in a calculation`, 0);
  }
}

function refName(node: jsep.Expression, source: string): string {
  if (node.type === 'Identifier') return String(node.name);
  if (node.type === 'MemberExpression' && !node.computed) {
    const obj = node.object as jsep.Expression;
    const prop = node.property as jsep.Expression;
    if (obj.type === 'Identifier' && prop.type === 'Identifier') return `${String(obj.name)}.${String(prop.name)}`;
  }
  throw new ExprError('a reference is `name` or `model.name`', Math.max(0, source.indexOf('[')));
}

/** `avg(grid.P, 60s)`: a point reference and a duration literal, checked here (a type error otherwise). */
function compileWindow(fn: WindowFn, args: jsep.Expression[], c: Compiling): Fn {
  const at = Math.max(0, c.source.indexOf(fn));
  if (!c.options.windows) throw new ExprError(`${fn}(x, window) is a window function, allowed in rules only`, at);
  if (args.length !== 2) throw new ExprError(`${fn}() takes a point and a window, e.g. ${fn}(grid.P, 60s); not ${args.length} argument(s)`, at);
  const [point, length] = args as [jsep.Expression, jsep.Expression];
  if (point.type !== 'Identifier' && point.type !== 'MemberExpression')
    throw new ExprError(`${fn}()'s first argument must be a point (model.name), not an expression`, at);
  const ref = refName(point, c.source);
  if (length.duration !== true || typeof length.value !== 'number') throw new ExprError(`${fn}()'s window must be a duration such as 500ms, 60s, 5m or 1h`, at);
  const ms = length.value;
  if (ms <= 0 || ms > MAX_WINDOW_MS) throw new ExprError(`${fn}()'s window must be longer than 0 and at most 24h, not ${String(length.raw)}`, at);
  c.refs.add(ref);
  c.windows.push({ fn, ref, ms });
  return (_s, w) => w?.(fn, ref, ms) ?? Number.NaN;
}

export function compileExpr(source: string, options: CompileOptions = {}): CompiledExpr {
  let ast: jsep.Expression;
  try {
    ast = jsep(source);
  } catch (e) {
    const err = e as Error & { index?: number };
    throw new ExprError(err.message, err.index ?? 0);
  }
  if (ast.type === 'Compound') throw new ExprError('one expression only', 0);
  const c: Compiling = { refs: new Set(), windows: [], source, options };
  const fn = compileNode(ast, c);
  return { source, refs: [...c.refs], windows: c.windows, evaluate: fn };
}
