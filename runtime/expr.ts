/**
 * The calculation language of models: arithmetic, comparisons, logic, the
 * ternary `?:` and a fixed list of functions, over numbers only. Parsed by
 * jsep, compiled here into closures from a whitelist of node kinds; user text
 * is never handed to eval or Function. References are static (`P`, `pv1.P`),
 * so the dependency graph and its cycles are known at validate time.
 */
import jsep from 'jsep';

jsep.removeBinaryOp('^');
jsep.addBinaryOp('^', 11, true);
jsep.removeBinaryOp('|');
jsep.removeBinaryOp('&');
jsep.removeBinaryOp('<<');
jsep.removeBinaryOp('>>');
jsep.removeBinaryOp('>>>');
jsep.removeUnaryOp('~');

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

type Scope = (ref: string) => number | undefined;
type Fn = (scope: Scope) => number;

export interface CompiledExpr {
  readonly source: string;
  /** Every reference in the expression: `name` (same model) or `model.name`. */
  readonly refs: readonly string[];
  /** NaN when a reference has no value yet. */
  evaluate(scope: Scope): number;
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

function compileNode(node: jsep.Expression, refs: Set<string>, source: string): Fn {
  switch (node.type) {
    case 'Literal': {
      const v = node.value;
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
      const arg = compileNode(node.argument as jsep.Expression, refs, source);
      switch (node.operator) {
        case '-':
          return (s) => -arg(s);
        case '+':
          return arg;
        case '!':
          return (s) => bool(!arg(s));
        default:
          throw new ExprError(`operator '${String(node.operator)}' is not allowed`, 0);
      }
    }
    case 'BinaryExpression': {
      const left = compileNode(node.left as jsep.Expression, refs, source);
      const right = compileNode(node.right as jsep.Expression, refs, source);
      const op = String(node.operator);
      if (op === '&&') return (s) => bool(left(s) !== 0 && right(s) !== 0);
      if (op === '||') return (s) => bool(left(s) !== 0 || right(s) !== 0);
      const f = BINARY[op];
      if (!f) throw new ExprError(`operator '${op}' is not allowed`, 0);
      return (s) => f(left(s), right(s));
    }
    case 'ConditionalExpression': {
      const test = compileNode(node.test as jsep.Expression, refs, source);
      const yes = compileNode(node.consequent as jsep.Expression, refs, source);
      const no = compileNode(node.alternate as jsep.Expression, refs, source);
      return (s) => (test(s) !== 0 ? yes(s) : no(s));
    }
    case 'CallExpression': {
      const callee = node.callee as jsep.Expression;
      const fname = callee.type === 'Identifier' ? String(callee.name) : '';
      const spec = Object.hasOwn(FUNCTIONS, fname) ? FUNCTIONS[fname] : undefined;
      if (!spec)
        throw new ExprError(`unknown function '${fname || nodeText(callee)}' (known: ${FUNCTION_NAMES.join(', ')})`, Math.max(0, source.indexOf(fname)));
      const args = (node.arguments as jsep.Expression[]).map((a) => compileNode(a, refs, source));
      const [lo, hi] = spec.arity;
      if (args.length < lo || args.length > hi)
        throw new ExprError(`${fname}() takes ${lo === hi ? lo : `${lo} to ${hi}`} argument(s), not ${args.length}`, source.indexOf(fname));
      const fn = spec.fn;
      return (s) => fn(...args.map((a) => a(s)));
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

export function compileExpr(source: string): CompiledExpr {
  let ast: jsep.Expression;
  try {
    ast = jsep(source);
  } catch (e) {
    const err = e as Error & { index?: number };
    throw new ExprError(err.message, err.index ?? 0);
  }
  if (ast.type === 'Compound') throw new ExprError('one expression only', 0);
  const refs = new Set<string>();
  const fn = compileNode(ast, refs, source);
  return { source, refs: [...refs], evaluate: fn };
}
