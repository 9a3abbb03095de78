/**
 * The machine each actor kind runs, and its layout for the visualizer.
 *
 * A layout depends on the machine's definition only, so `npm run build` lays
 * every machine out once (runtime/bin/build.js → dist/machine-layouts.json)
 * and the gateway serves those. Laying out at the first request instead loaded
 * elkjs and ran it on the gateway's one thread: ~0.6 s on an idle machine
 * (~1.6 s beside a 100k-point site), during which REST and the feed waited.
 * Each stored layout carries the graph it was made from (its JSON): one that
 * no longer matches the machine (sources changed since the build) is ignored
 * and laid out on demand as before.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AnyStateMachine } from 'xstate';
import { alarmEvaluatorMachine } from '../machines/alarmEvaluatorMachine.js';
import { channelMachine } from '../machines/channelMachine.js';
import { cloudMachine } from '../machines/cloudMachine.js';
import { gatewayMachine } from '../machines/gatewayMachine.js';
import { historyMachine } from '../machines/historyMachine.js';
import { modelMachine } from '../machines/modelMachine.js';
import { ruleMachine } from '../machines/ruleMachine.js';
import { layoutGraph, machineGraph, type LaidOutGraph } from './machineGraph.js';

/** The machine each actor kind runs (supervisors run none): every kind in runtime/kinds.ts. */
export const MACHINES: Readonly<Record<string, AnyStateMachine>> = {
  channel: channelMachine,
  model: modelMachine,
  alarm: alarmEvaluatorMachine,
  rule: ruleMachine,
  history: historyMachine,
  gateway: gatewayMachine,
  cloud: cloudMachine,
};

/** What the build writes: per kind, the graph it laid out (JSON, to tell a stale layout) and the layout. */
export type StoredLayouts = Record<string, { readonly graph: string; readonly layout: LaidOutGraph }>;

export const LAYOUTS_FILE = 'machine-layouts.json';

/** Every kind's machine laid out (the build runs this). */
export async function computeLayouts(): Promise<StoredLayouts> {
  const out: StoredLayouts = {};
  for (const [kind, machine] of Object.entries(MACHINES)) {
    const graph = machineGraph(machine);
    out[kind] = { graph: JSON.stringify(graph), layout: await layoutGraph(graph) };
  }
  return out;
}

/** The stored layouts that still match their machine, by kind; nothing when there are none or they cannot be read. */
export function storedLayouts(stored: unknown): Map<string, LaidOutGraph> {
  const out = new Map<string, LaidOutGraph>();
  if (typeof stored !== 'object' || stored === null) return out;
  for (const [kind, machine] of Object.entries(MACHINES)) {
    const s = (stored as Partial<StoredLayouts>)[kind];
    if (s && typeof s.graph === 'string' && s.graph === JSON.stringify(machineGraph(machine))) out.set(kind, s.layout);
  }
  return out;
}

/** dist/machine-layouts.json next to the bundle (dist/*.mjs) or, from the sources, at the top of the checkout. */
export function readStoredLayouts(): Map<string, LaidOutGraph> {
  for (const c of [new URL(`./${LAYOUTS_FILE}`, import.meta.url), new URL(`../dist/${LAYOUTS_FILE}`, import.meta.url)]) {
    const file = fileURLToPath(c);
    if (!existsSync(file)) continue;
    try {
      return storedLayouts(JSON.parse(readFileSync(file, 'utf8')));
    } catch {
      // A damaged file is a build's leftover, not the site's data: the layouts are made on demand instead.
      return new Map();
    }
  }
  return new Map();
}

/** The layout of a kind's machine: the build's when it matches, else laid out once on demand. */
export class MachineLayouts {
  private readonly graphs = new Map<string, Promise<LaidOutGraph>>();

  constructor(stored: ReadonlyMap<string, LaidOutGraph> = readStoredLayouts()) {
    for (const [kind, layout] of stored) this.graphs.set(kind, Promise.resolve(layout));
  }

  /** undefined when the kind runs no machine. */
  of(kind: string): Promise<LaidOutGraph> | undefined {
    const machine = MACHINES[kind];
    if (!machine) return undefined;
    let g = this.graphs.get(kind);
    if (!g) {
      g = layoutGraph(machineGraph(machine));
      this.graphs.set(kind, g);
    }
    return g;
  }
}
