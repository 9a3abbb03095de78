/**
 * An XState machine definition as a graph the visualizer draws: its states
 * (nested ones as children of their parent), each with the actors it invokes,
 * and its transitions with their event names and guards. Read from the
 * machine's state nodes, so it cannot drift from what runs.
 *
 * `layoutGraph` places it with elkjs (layered, nested states inside their
 * parents), on the server: the page then draws plain SVG and never downloads
 * the layout engine (~480 kB gzipped, more than both pages together).
 */
import type { AnyStateMachine } from 'xstate';

export type StateType = 'atomic' | 'compound' | 'parallel' | 'final' | 'history';

export interface GraphState {
  /** The path from the root, dot-separated ('' for the root). */
  readonly id: string;
  readonly key: string;
  /** The parent's id; null for the root. */
  readonly parent: string | null;
  readonly type: StateType;
  /** The initial state of its parent. */
  readonly initial: boolean;
  /** Sources of the actors this state invokes. */
  readonly invoke: readonly string[];
}

/** event: a named event; after: a delay; done/error: an invoked actor ended; always: eventless. */
export type TransitionKind = 'event' | 'after' | 'done' | 'error' | 'always';

export interface GraphTransition {
  readonly source: string;
  /** null: a transition that only runs actions and stays. */
  readonly target: string | null;
  readonly kind: TransitionKind;
  /** As the machine names it: 'channel.polled', 'after reconnectDelay', 'done: connect', 'error: polls'. */
  readonly event: string;
  readonly guard: string | null;
  readonly actions: readonly string[];
}

export interface MachineGraph {
  readonly id: string;
  readonly states: readonly GraphState[];
  readonly transitions: readonly GraphTransition[];
}

interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}
export interface Point {
  readonly x: number;
  readonly y: number;
}

export interface LaidOutGraph extends MachineGraph {
  readonly width: number;
  readonly height: number;
  /** Absolute boxes of the states, by id. */
  readonly boxes: Readonly<Record<string, Box>>;
  /** One per transition with a target, in the same order as those: its polyline and label position. */
  readonly edges: ReadonlyArray<{ readonly points: readonly Point[]; readonly label: Point | null }>;
}

type Node = AnyStateMachine['root'];
type Transition = NonNullable<Node['always']>[number];

/** A guard or action as written: a name, a `{type}` object, or a function (its name, when it has one). */
function nameOf(x: unknown): string {
  if (typeof x === 'string') return x;
  if (typeof x === 'function') return x.name || 'inline';
  if (x && typeof x === 'object' && 'type' in x && typeof x.type === 'string') return x.type;
  return 'inline';
}

function srcName(src: unknown): string {
  return typeof src === 'string' ? src : ((src as { id?: string } | null)?.id ?? 'inline');
}

export function machineGraph(machine: AnyStateMachine): MachineGraph {
  const states: GraphState[] = [];
  const transitions: GraphTransition[] = [];
  const pathOf = (n: Node) => n.path.join('.');
  const visit = (node: Node) => {
    const invokes = node.invoke.map((i) => ({ id: i.id, src: srcName(i.src) }));
    const parent = node.parent;
    states.push({
      id: pathOf(node),
      key: node.key,
      parent: parent ? pathOf(parent) : null,
      type: node.type,
      initial: parent?.initial?.target.some((t) => t === node) ?? false,
      invoke: invokes.map((i) => i.src),
    });
    // Invoke ids are generated ('0.channel.connecting') when not given: name them by their source.
    const srcOf = (id: string) => invokes.find((i) => i.id === id)?.src ?? id;
    const label = (eventType: string): { kind: TransitionKind; event: string } => {
      const after = /^xstate\.after\.(.+?)\.[^.]*(\..*)?$/.exec(eventType);
      if (eventType.startsWith('xstate.after.')) return { kind: 'after', event: `after ${after?.[1] ?? eventType.slice(13)}` };
      if (eventType.startsWith('xstate.done.actor.')) return { kind: 'done', event: `done: ${srcOf(eventType.slice(18))}` };
      if (eventType.startsWith('xstate.error.actor.')) return { kind: 'error', event: `error: ${srcOf(eventType.slice(19))}` };
      return { kind: 'event', event: eventType };
    };
    const add = (t: Transition, kind: { kind: TransitionKind; event: string }) => {
      transitions.push({
        source: pathOf(node),
        target: t.target && t.target.length > 0 ? pathOf(t.target[0]!) : null,
        ...kind,
        guard: t.guard ? nameOf(t.guard) : null,
        actions: t.actions.map(nameOf).filter((a) => !a.startsWith('xstate.')),
      });
    };
    for (const [eventType, list] of node.transitions) for (const t of list) add(t, label(eventType));
    for (const t of node.always ?? []) add(t, { kind: 'always', event: 'always' });
    for (const child of Object.values(node.states) as Node[]) visit(child);
  };
  visit(machine.root);
  return { id: machine.id, states, transitions };
}

/**
 * The ids of the states a state value is in, outermost first: 'polling' →
 * ['', 'polling']; {ready: 'idle'} → ['', 'ready', 'ready.idle'].
 */
export function activeStates(value: unknown, prefix = ''): string[] {
  const out = prefix === '' ? [''] : [];
  const join = (k: string) => (prefix ? `${prefix}.${k}` : k);
  if (typeof value === 'string') out.push(join(value));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) out.push(join(k), ...activeStates(v, join(k)));
  }
  return out;
}

const CHAR_W = 7;
const LINE_H = 16;

interface ElkOut {
  id: string;
  x?: number;
  y?: number;
  width?: number;
  height?: number;
  children?: ElkOut[];
  edges?: ElkEdgeOut[];
}
interface ElkEdgeOut {
  id: string;
  container?: string;
  sections?: Array<{ startPoint: Point; endPoint: Point; bendPoints?: Point[] }>;
  labels?: Array<{ x?: number; y?: number; width?: number; height?: number }>;
}

export async function layoutGraph(graph: MachineGraph): Promise<LaidOutGraph> {
  // A CommonJS module: its default import is the constructor.
  const ELK = (await import('elkjs/lib/elk.bundled.js')).default as unknown as new () => { layout(graph: unknown): Promise<unknown> };
  const elk = new ELK();
  const children = new Map<string | null, GraphState[]>();
  for (const s of graph.states) children.set(s.parent, [...(children.get(s.parent) ?? []), s]);
  // A state's own lines: its name, what it invokes, and the transitions that stay in it.
  const lines = (s: GraphState) => [
    s.key || graph.id,
    ...s.invoke.map((i) => `invoke ${i}`),
    ...graph.transitions.filter((t) => t.source === s.id && t.target === null).map((t) => `${t.event}${t.guard ? ` [${t.guard}]` : ''}`),
  ];
  const node = (s: GraphState): Record<string, unknown> => {
    const kids = children.get(s.id) ?? [];
    const text = lines(s);
    const width = Math.max(...text.map((l) => l.length)) * CHAR_W + 24;
    const header = text.length * LINE_H + 12;
    return {
      id: s.id || '(root)',
      ...(kids.length
        ? {
            children: kids.map(node),
            layoutOptions: {
              'elk.padding': `[top=${header + 8},left=16,bottom=16,right=16]`,
              'elk.nodeSize.minimum': `(${width},${header})`,
              'elk.nodeSize.constraints': 'MINIMUM_SIZE',
            },
          }
        : { width, height: header }),
    };
  };
  const rootState = graph.states.find((s) => s.parent === null)!;
  const withTarget = graph.transitions.filter((t) => t.target !== null);
  const elkId = (id: string) => id || '(root)';
  const labelOf = (t: GraphTransition) => `${t.event}${t.guard ? ` [${t.guard}]` : ''}`;
  const out = (await elk.layout({
    id: 'graph',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'DOWN',
      'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
      'elk.edgeLabels.inline': 'false',
      'elk.spacing.nodeNode': '40',
      'elk.layered.spacing.nodeNodeBetweenLayers': '50',
      'elk.spacing.edgeLabel': '4',
      'elk.padding': '[top=12,left=12,bottom=12,right=12]',
    },
    children: [node(rootState)],
    edges: withTarget.map((t, i) => ({
      id: `e${i}`,
      sources: [elkId(t.source)],
      targets: [elkId(t.target!)],
      labels: [{ text: labelOf(t), width: labelOf(t).length * CHAR_W, height: LINE_H }],
    })),
  })) as ElkOut;

  const boxes: Record<string, Box> = {};
  const origin = new Map<string, Point>([['graph', { x: 0, y: 0 }]]);
  const place = (n: ElkOut, at: Point) => {
    const abs = { x: at.x + (n.x ?? 0), y: at.y + (n.y ?? 0) };
    origin.set(n.id, abs);
    boxes[n.id === '(root)' ? '' : n.id] = { ...abs, width: n.width ?? 0, height: n.height ?? 0 };
    for (const c of n.children ?? []) place(c, abs);
  };
  for (const c of out.children ?? []) place(c, { x: 0, y: 0 });
  // Edges may be moved into the node that contains both ends; their points are relative to it.
  const found = new Map<string, ElkEdgeOut>();
  const collect = (n: ElkOut) => {
    for (const e of n.edges ?? []) found.set(e.id, e);
    for (const c of n.children ?? []) collect(c);
  };
  collect(out);
  const edges = withTarget.map((_, i) => {
    const e = found.get(`e${i}`);
    const base = origin.get(e?.container ?? 'graph') ?? { x: 0, y: 0 };
    const shift = (p: Point) => ({ x: base.x + p.x, y: base.y + p.y });
    const s = e?.sections?.[0];
    const points = s ? [s.startPoint, ...(s.bendPoints ?? []), s.endPoint].map(shift) : [];
    const l = e?.labels?.[0];
    return { points, label: l && l.x !== undefined && l.y !== undefined ? shift({ x: l.x, y: l.y }) : null };
  });
  return { ...graph, width: out.width ?? 0, height: out.height ?? 0, boxes, edges };
}
