/** A child for supervisor tests: records its starts and stops in a shared log and fails on command. */
import type { ChildSpec, ExitReason, RestartType, RunningChild } from '../../runtime/supervisor.js';

export type LogEntry = { op: 'start' | 'stop'; id: string; at: number };

export class TestChildren {
  readonly log: LogEntry[] = [];
  private readonly live = new Map<string, (r: ExitReason) => void>();
  constructor(private readonly now: () => number) {}

  spec(id: string, restart: RestartType = 'permanent'): ChildSpec {
    return {
      id,
      restart,
      shutdown: 1000,
      type: 'worker',
      start: async (): Promise<RunningChild> => {
        this.log.push({ op: 'start', id, at: this.now() });
        let listener: ((r: ExitReason) => void) | undefined;
        const child: RunningChild = {
          stop: async () => {
            this.live.delete(id);
            this.log.push({ op: 'stop', id, at: this.now() });
          },
          onExit: (l) => {
            listener = l;
          },
        };
        this.live.set(id, (r) => {
          this.live.delete(id);
          listener?.(r);
        });
        return child;
      },
    };
  }

  isRunning(id: string): boolean {
    return this.live.has(id);
  }

  exit(id: string, reason: ExitReason): boolean {
    const f = this.live.get(id);
    if (!f) return false;
    f(reason);
    return true;
  }
}
