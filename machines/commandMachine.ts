/**
 * The life of one control command. Persisted (the `command:{id}` hash): the
 * transitions that the Redis Function `cmd_result` accepts are generated from
 * this definition (runtime/redis/library.ts generates the table from `commandTransitions`), never
 * written a second time by hand.
 */
import { setup } from 'xstate';

export type CommandEvent = { readonly type: 'command.confirmed' } | { readonly type: 'command.failed' } | { readonly type: 'command.timeout' };

export type CommandStatus = 'pending' | 'confirmed' | 'failed' | 'timeout';

export const commandMachine = setup({
  types: { events: {} as CommandEvent },
}).createMachine({
  id: 'command',
  initial: 'pending',
  states: {
    pending: {
      on: {
        'command.confirmed': 'confirmed',
        'command.failed': 'failed',
        'command.timeout': 'timeout',
      },
    },
    confirmed: { type: 'final' },
    failed: { type: 'final' },
    timeout: { type: 'final' },
  },
});

/** from state → allowed target states, read off the machine definition. */
export function commandTransitions(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, node] of Object.entries(commandMachine.root.states)) {
    const targets = new Set<string>();
    for (const list of node.transitions.values()) {
      for (const t of list) for (const target of t.target ?? []) targets.add(target.key);
    }
    out[name] = [...targets];
  }
  return out;
}
