/**
 * The faults the soak (./soak.ts) injects into a running `voltage start`, in
 * the order it cycles through them: the fault matrix of test/faults/, each as
 * it can be done from outside the runtime's process, with the fault tests'
 * helpers (the TCP proxy, the simulator, the malformed requests, the feed
 * client). A fault says whether it erases Redis on purpose (then the writes
 * it erased are its effect, not losses) and, when the soak's usual recovery
 * (the site, the mapping, a new `seq` write, /health ok) is not all of it,
 * what else must be back.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { spawnRedis, type RedisServer } from '../../runtime/redisServer.js';
import { malformedRequest } from '../faults/malformed.js';
import { feedCounters } from '../helpers/feedClient.js';
import type { TcpProxy } from '../helpers/tcpProxy.js';
import type { SlowClientHears, SlowClientSays } from './slowFeedClient.js';

export const TOKEN = 'soak-token';
/** How long a device fault lasts (its answers garbage, swallowed, or its link dropped on every request). */
const DEVICE_FAULT_MS = 10_000;
/** A command's ends: once the API said one, it stands (a record FLUSHALL erased reads `lost` only from the gateway process that accepted it). */
export const ENDS = new Set(['confirmed', 'failed', 'timeout', 'lost']);

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`, or undefined after `ms` (a stopped Redis never answers). */
export async function within<T>(ms: number, p: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((r) => {
    timer = setTimeout(() => r(undefined), ms);
  });
  try {
    return await Promise.race([p.catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** How the proxy in front of the Modbus device passes its answers. */
export type DeviceAnswers = 'as they are' | 'garbage' | 'swallowed';

export interface Control {
  readonly id: string;
  readonly at: number;
  status?: string;
}

export interface Ctx {
  redis: RedisServer;
  aofDir: string;
  readonly probe: Redis;
  readonly base: string;
  readonly outageMs: number;
  /** 5xx answers other than 503 to the malformed requests. */
  bad5xx: number;
  /** The Modbus device `mb` (the simulator) is behind this proxy. */
  readonly deviceProxy: TcpProxy;
  deviceAnswers: DeviceAnswers;
  /** `voltage start`, and how to start it again on the same config. */
  runtime: ChildProcess;
  readonly startRuntime: () => ChildProcess;
  /** Called before the runtime is killed: what its process alone knows is read then (its memory, its polls not written). */
  readonly beforeRuntimeKill: () => Promise<void>;
  readonly api: (method: string, path: string, body?: unknown) => Promise<{ status: number; text: string }>;
  /** Every control accepted (202), the soak's own and a fault's: each must end. */
  readonly controls: Control[];
  /** What a fault saw go wrong that is not a write lost (a garbage reading `good`, a client never marked behind). */
  readonly problems: Array<{ fault: string; what: string }>;
  /** The slow WebSocket client while its fault lasts. */
  slowClient?: { proc: ChildProcess; said: Set<SlowClientSays> };
  /** What a fault tells about its recovery (printed with it, then cleared). */
  readonly notes: string[];
  /** The command the runtime was killed in the middle of. */
  killedCommand?: string;
}

export interface Fault {
  readonly name: string;
  /** It erases what Redis holds on purpose: the writes it erased are its effect, not losses. */
  readonly erases: boolean;
  inject(ctx: Ctx): Promise<void>;
  /** What must be back too, beyond the soak's usual recovery (`injected`: when the injection ended). */
  recovered?(ctx: Ctx, injected: number): Promise<boolean>;
}

async function killRedis(ctx: Ctx): Promise<void> {
  const exited = new Promise((r) => ctx.redis.process.once('exit', r));
  ctx.redis.process.kill('SIGKILL');
  await exited;
}

/** The device point's quality and timestamp (undefined while Redis does not answer). */
async function devicePoint(probe: Redis): Promise<{ q: string | null; ts: number } | undefined> {
  const r = await within(500, Promise.all([probe.hget('comsrv:mb:m:q', '1'), probe.hget('comsrv:mb:m:ts', '1')]));
  return r && { q: r[0], ts: Number(r[1]) };
}

/**
 * A device fault for DEVICE_FAULT_MS: once its point has gone bad (within 5 s), it must not read `good`
 * again until the fault ends (no garbage taken for a value, no stale value passed off as fresh).
 * Recovered: the point good again with a reading taken after the fault.
 */
function deviceFault(name: string, set: (ctx: Ctx, on: boolean) => void): Fault {
  return {
    name,
    erases: false,
    async inject(ctx) {
      const from = Date.now();
      set(ctx, true);
      let badAt: number | undefined;
      let goodAgain = 0;
      try {
        while (Date.now() - from < DEVICE_FAULT_MS) {
          await sleep(100);
          const p = await devicePoint(ctx.probe);
          if (!p) continue;
          if (p.q !== 'good') badAt ??= Date.now();
          else if (badAt !== undefined && p.ts > badAt) goodAgain += 1;
        }
      } finally {
        set(ctx, false);
      }
      if (badAt === undefined) ctx.problems.push({ fault: name, what: `the device's point never went bad in ${DEVICE_FAULT_MS / 1000} s` });
      else if (badAt - from > 5_000) ctx.problems.push({ fault: name, what: `the device's point went bad only ${badAt - from} ms after the fault began` });
      if (goodAgain > 0) ctx.problems.push({ fault: name, what: `the device's point read good ${goodAgain} times during the fault` });
    },
    async recovered(ctx, injected) {
      const p = await devicePoint(ctx.probe);
      return p?.q === 'good' && p.ts > injected;
    },
  };
}

const SLOW_CLIENT = 'a slow WebSocket client (stops reading)';
const SLOW_CLIENT_SCRIPT = fileURLToPath(new URL('./slowFeedClient.ts', import.meta.url));
const RUNTIME_KILLED = 'the runtime killed (kill -9) in the middle of a command, started again';

export const FAULTS: readonly Fault[] = [
  {
    name: 'Redis restarted on its AOF (kill -9)',
    erases: false,
    async inject(ctx) {
      await killRedis(ctx);
      ctx.redis = await spawnRedis({ aofDir: ctx.aofDir, port: ctx.redis.port });
    },
  },
  {
    name: 'FLUSHALL',
    erases: true,
    async inject(ctx) {
      await ctx.probe.flushall();
    },
  },
  {
    name: 'FUNCTION FLUSH',
    erases: false,
    async inject(ctx) {
      await ctx.probe.call('FUNCTION', 'FLUSH');
    },
  },
  {
    name: 'Redis unreachable (SIGSTOP … SIGCONT)',
    erases: false,
    async inject(ctx) {
      ctx.redis.process.kill('SIGSTOP');
      await sleep(ctx.outageMs);
      ctx.redis.process.kill('SIGCONT');
    },
  },
  {
    name: 'the gateway process killed (kill -9)',
    erases: false,
    async inject(ctx) {
      const pid = (JSON.parse((await ctx.probe.hget('actor:gateway', 'context')) ?? '{}') as { pid?: number }).pid;
      if (pid) process.kill(pid, 'SIGKILL');
    },
  },
  {
    name: '1,000 malformed API requests',
    erases: false,
    async inject(ctx) {
      for (let i = 0; i < 1_000; i += 50) {
        await Promise.all(
          Array.from({ length: 50 }, async (_, j) => {
            const [method, path, headers, body] = malformedRequest(i + j, TOKEN, 'seq', 'limit');
            try {
              const r = await fetch(ctx.base + path, { method, headers, body, signal: AbortSignal.timeout(10_000) });
              await r.arrayBuffer();
              if (r.status >= 500 && r.status !== 503) ctx.bad5xx += 1;
            } catch {
              ctx.bad5xx += 1;
            }
          }),
        );
      }
    },
  },
  deviceFault('a device that answers garbage (10 s)', (ctx, on) => {
    ctx.deviceAnswers = on ? 'garbage' : 'as they are';
  }),
  deviceFault('a device that stops answering (10 s)', (ctx, on) => {
    ctx.deviceAnswers = on ? 'swallowed' : 'as they are';
  }),
  deviceFault("a TCP link dropped mid-request (every request's, 10 s)", (ctx, on) => {
    ctx.deviceProxy.dropRequests(on);
  }),
  {
    // It stops reading for the outage's length, and longer until the gateway has marked it behind (at most 30 s more).
    name: SLOW_CLIENT,
    erases: false,
    async inject(ctx) {
      const proc = fork(SLOW_CLIENT_SCRIPT, [ctx.base, TOKEN, 'model/*', 'channel/*'], { execArgv: ['--import', 'tsx'], stdio: 'ignore' });
      const slow = { proc, said: new Set<SlowClientSays>() };
      proc.on('message', (m: SlowClientSays) => slow.said.add(m));
      ctx.slowClient = slow;
      for (let i = 0; i < 100 && !slow.said.has('subscribed'); i++) await sleep(100);
      if (!slow.said.has('subscribed')) ctx.problems.push({ fault: SLOW_CLIENT, what: 'the client got no snapshot in 10 s' });
      proc.send('pause' satisfies SlowClientHears);
      const pausedAt = Date.now();
      let behind = false;
      const closed = () => slow.said.has('closed');
      while (!closed() && (!behind || Date.now() - pausedAt < ctx.outageMs) && Date.now() - pausedAt < ctx.outageMs + 30_000) {
        await sleep(250);
        const m = await ctx.api('GET', '/metrics').catch(() => undefined);
        if (m?.status === 200 && feedCounters(m.text).behind > 0) behind = true;
      }
      if (!behind) ctx.problems.push({ fault: SLOW_CLIENT, what: `the client was not marked behind in ${Date.now() - pausedAt} ms` });
      if (closed()) ctx.problems.push({ fault: SLOW_CLIENT, what: 'the gateway closed the client' });
      proc.send('resume' satisfies SlowClientHears);
    },
    /** Recovered: it got a snapshot after reading again, and no client is behind (or it was closed: said above). */
    async recovered(ctx) {
      const slow = ctx.slowClient;
      if (!slow) return true;
      const m = await ctx.api('GET', '/metrics').catch(() => undefined);
      const done = slow.said.has('closed') || (slow.said.has('snapshot') && m?.status === 200 && feedCounters(m.text).behind === 0);
      if (done) {
        slow.proc.kill();
        ctx.slowClient = undefined;
      }
      return done;
    },
  },
  {
    name: 'Redis restarted without persistence (kill -9, on an empty AOF folder)',
    erases: true,
    async inject(ctx) {
      await killRedis(ctx);
      rmSync(ctx.aofDir, { recursive: true, force: true });
      ctx.aofDir = mkdtempSync(join(tmpdir(), 'voltage-soak-aof-'));
      ctx.redis = await spawnRedis({ aofDir: ctx.aofDir, port: ctx.redis.port });
    },
  },
  {
    // Killed as soon as a control is accepted: its channel has it in the stream, or is writing it.
    name: RUNTIME_KILLED,
    erases: false,
    async inject(ctx) {
      await ctx.beforeRuntimeKill();
      const r = await ctx.api('POST', '/api/v1/models/seq/controls/limit', { value: 7 });
      const exited = new Promise((res) => ctx.runtime.once('exit', res));
      ctx.runtime.kill('SIGKILL');
      if (r.status === 202) {
        const id = (JSON.parse(r.text) as { commandId: string }).commandId;
        ctx.controls.push({ id, at: Date.now() });
        ctx.killedCommand = id;
      } else ctx.problems.push({ fault: RUNTIME_KILLED, what: `the control before the kill was answered ${r.status}` });
      await exited;
      ctx.runtime = ctx.startRuntime();
    },
    /** Recovered: the command it was killed in the middle of has ended (confirmed, or timeout past its deadline). */
    async recovered(ctx) {
      if (!ctx.killedCommand) return true;
      const status = await within(250, ctx.probe.hget(`command:${ctx.killedCommand}`, 'status'));
      if (!ENDS.has(status ?? '')) return false;
      ctx.notes.push(`the command ended ${status}`);
      ctx.killedCommand = undefined;
      return true;
    },
  },
];
