/**
 * The visualizer's graph of a machine: read from the XState definition
 * (states, nesting, invoked actors, transitions with events and guards), and
 * laid out by elkjs with every state inside its parent.
 */
import { describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { activeStates, layoutGraph, machineGraph } from '../../runtime/machineGraph.js';
import { channelMachine } from '../../machines/channelMachine.js';
import { modelMachine } from '../../machines/modelMachine.js';
import { MACHINES, MachineLayouts, readStoredLayouts, storedLayouts } from '../../runtime/machineLayouts.js';

describe('machineGraph', () => {
  it('the channel machine: states, invoked actors, guarded transitions, events named as written', () => {
    const g = machineGraph(channelMachine);
    expect(g.id).toBe('channel');
    expect(g.states.map((s) => [s.id, s.parent, s.initial, s.invoke])).toEqual([
      ['', null, false, []],
      ['connecting', '', true, ['connect']],
      ['reconnecting', '', false, []],
      ['polling', '', false, ['polls']],
    ]);
    expect(g.transitions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ source: 'connecting', target: 'polling', kind: 'done', event: 'done: connect', guard: null }),
        expect.objectContaining({
          source: 'connecting',
          target: 'reconnecting',
          kind: 'error',
          event: 'error: connect',
          guard: 'isTransient',
          actions: ['countLinkError'],
        }),
        expect.objectContaining({ source: 'reconnecting', target: 'connecting', kind: 'after', event: 'after reconnectDelay' }),
        expect.objectContaining({ source: 'polling', target: 'reconnecting', kind: 'error', event: 'error: polls', guard: 'isTransient' }),
        expect.objectContaining({ source: 'polling', target: null, kind: 'event', event: 'channel.polled', actions: ['countPolls'] }),
      ]),
    );
    expect(g.transitions).toHaveLength(5);
  });

  it('nested states, eventless transitions and the initial state of each level', () => {
    const g = machineGraph(modelMachine);
    expect(g.states.filter((s) => s.parent === 'ready').map((s) => `${s.key}${s.initial ? '*' : ''}`)).toEqual(['idle', 'calculating*', 'retrying']);
    expect(g.states.find((s) => s.id === 'ready')?.type).toBe('compound');
    expect(g.transitions).toContainEqual(expect.objectContaining({ source: 'ready.idle', target: 'ready.calculating', kind: 'always', guard: 'isDirty' }));
  });

  it('inline guards and parallel states', () => {
    const m = createMachine({
      id: 'p',
      type: 'parallel',
      states: {
        a: {
          initial: 'x',
          states: {
            x: {
              on: {
                GO: {
                  target: 'y',
                  guard: function isReady() {
                    return true;
                  },
                },
              },
            },
            y: {},
          },
        },
        b: { initial: 'z', states: { z: {} } },
      },
    });
    const g = machineGraph(m);
    expect(g.states[0]!.type).toBe('parallel');
    expect(g.transitions).toEqual([expect.objectContaining({ source: 'a.x', target: 'a.y', event: 'GO', guard: 'isReady' })]);
  });

  it('activeStates: every level of a state value', () => {
    expect(activeStates('polling')).toEqual(['', 'polling']);
    expect(activeStates({ ready: 'idle' })).toEqual(['', 'ready', 'ready.idle']);
    expect(activeStates({ a: { x: 'q' }, b: 'z' })).toEqual(['', 'a', 'a.x', 'a.x.q', 'b', 'b.z']);
  });

  it('layout: every state has a box inside its parent; every transition has a path from its source to its target', async () => {
    for (const machine of [channelMachine, modelMachine]) {
      const l = await layoutGraph(machineGraph(machine));
      for (const s of l.states) {
        const b = l.boxes[s.id]!;
        expect(b.width).toBeGreaterThan(0);
        if (s.parent === null) continue;
        const p = l.boxes[s.parent]!;
        expect(b.x).toBeGreaterThanOrEqual(p.x);
        expect(b.y).toBeGreaterThanOrEqual(p.y);
        expect(b.x + b.width).toBeLessThanOrEqual(p.x + p.width);
        expect(b.y + b.height).toBeLessThanOrEqual(p.y + p.height);
      }
      const near = (pt: { x: number; y: number }, id: string) => {
        const b = l.boxes[id]!;
        return pt.x >= b.x - 1 && pt.x <= b.x + b.width + 1 && pt.y >= b.y - 1 && pt.y <= b.y + b.height + 1;
      };
      const withTarget = l.transitions.filter((t) => t.target !== null);
      expect(l.edges).toHaveLength(withTarget.length);
      withTarget.forEach((t, i) => {
        const pts = l.edges[i]!.points;
        expect(pts.length).toBeGreaterThanOrEqual(2);
        expect(near(pts[0]!, t.source)).toBe(true);
        expect(near(pts.at(-1)!, t.target!)).toBe(true);
      });
    }
  });
});

describe("the build's layouts (runtime/machineLayouts.ts)", () => {
  it('a stored layout is served only while it matches its machine; a stale one is laid out on demand', async () => {
    const channel = await layoutGraph(machineGraph(channelMachine));
    const stored = {
      channel: { graph: JSON.stringify(machineGraph(channelMachine)), layout: channel },
      // Made from another definition: the machine changed since the build.
      model: { graph: JSON.stringify({ ...machineGraph(modelMachine), id: 'older' }), layout: channel },
      gateway: 'not a layout',
    };
    const kept = storedLayouts(stored);
    expect([...kept.keys()]).toEqual(['channel']);
    expect(storedLayouts(null).size).toBe(0);
    const layouts = new MachineLayouts(kept);
    expect(await layouts.of('channel')).toBe(channel);
    const model = await layouts.of('model');
    expect(model).not.toBe(channel);
    expect(model?.id).toBe('model');
    expect(layouts.of('supervisor')).toBeUndefined();
  });

  it('npm run build wrote a current layout of every kind, equal to one made now', async () => {
    const built = readStoredLayouts();
    expect([...built.keys()].sort()).toEqual(Object.keys(MACHINES).sort());
    expect(built.get('rule')).toEqual(await layoutGraph(machineGraph(MACHINES.rule!)));
  });
});
