/**
 * Binds channelMachine to a device and to Redis: each poll reads every point,
 * decodes and scales it, keeps what passes the deadband (report by exception,
 * with an integrity refresh), and commits the batch with one c2m call.
 * A reading that is not a finite number is stored with quality `bad` (its
 * last good value stays); it never fails the actor.
 * At most one c2m is in flight. While Redis is unreachable the channel goes on
 * polling (commands wait): the call in flight stays queued in ioredis, later
 * polls are not written but counted, and when Redis is back the next poll
 * writes the current state and the outage is logged and recorded on the actor
 * (redisOutageMs, unwrittenPolls, shown by `voltage status`).
 */
import { fromPromise } from 'xstate';
import { channelMachine, type PollLoopInput } from '../../machines/channelMachine.js';
import { backoffDelay } from '../../runtime/backoff.js';
import { machineChild } from '../../runtime/actorHost.js';
import type { ActorKind } from '../../runtime/actorKind.js';
import { recordPoll } from '../../runtime/metrics.js';
import type { ChannelConfig, PointConfig } from '../../runtime/config/site.js';
import type { Logger } from '../../runtime/logger.js';
import { C2mBatch } from '../../runtime/domain/c2mBatch.js';
import type { CommandEntry } from '../../runtime/domain/commands.js';
import type { Quality } from '../../runtime/domain/telemetry.js';
import { REDIS_ERROR_CODES, errorMessage, isRedisError } from '../../runtime/errors.js';
import { UNREACHABLE } from '../../runtime/redis/core.js';
import { KEYS } from '../../runtime/redis/keys.js';
import type { Subscriptions } from '../../runtime/redis/subscriptions.js';
import type { VoltageRedis } from '../../runtime/redis/voltageRedis.js';
import type { ActorRegistry } from '../../runtime/registry.js';
import { settled } from '../../runtime/reporter.js';
import type { ChildSpec } from '../../runtime/supervisor.js';
import { isDeviceError, type Device, type RawReading } from './device.js';
import { claimSlot, delayToSlot, newGrid, pollPhases } from './pollGrid.js';
import { createDevice } from './protocols.js';

export interface ChannelActorDeps {
  readonly redis: VoltageRedis;
  /** For command hints; without it, commands are picked up after each poll only. */
  readonly subscriptions?: Subscriptions;
  readonly registry: ActorRegistry;
  readonly log: Logger;
  /** Override of the protocol's device, for tests and the benchmark. */
  readonly device?: (channel: ChannelConfig) => Device;
  readonly now?: () => number;
}

/** A reading in engineering units (scale and offset applied), or NaN when it has no usable value. */
export function scaled(raw: RawReading, p: PointConfig): number {
  if (typeof raw !== 'number') return Number.NaN;
  const v = raw * p.scale + p.offset;
  return Number.isFinite(v) ? v : Number.NaN;
}

/** The quality of a reading whose scaled value is `value`: a device's mark, bad for what is not a finite number. */
export function readingQuality(raw: RawReading, value: number): Quality {
  if (typeof raw === 'object') return raw.quality;
  return Number.isNaN(value) ? 'bad' : 'good';
}

/**
 * Report by exception: what the channel sends of a point after a reading. The quality only
 * when `refresh` (it changed, or the integrity refresh is due): it rarely does. A value only
 * while the reading is good, and past the point's deadband from `last`, the value last sent
 * (NaN: none yet). Returns whether anything went into the batch.
 */
export function reportReading(
  batch: C2mBatch,
  p: Pick<PointConfig, 'type' | 'id' | 'deadband'>,
  value: number,
  quality: Quality,
  refresh: boolean,
  last: number,
): boolean {
  const good = quality === 'good';
  if (!refresh && !(good && (p.deadband === 0 || Number.isNaN(last) || Math.abs(value - last) > p.deadband))) return false;
  batch.add(p.type, p.id, good ? value : null, refresh ? quality : null);
  return true;
}

export function decode(raw: RawReading, p: PointConfig): { value: number | null; quality: Quality } {
  const value = scaled(raw, p);
  return { value: Number.isNaN(value) ? null : value, quality: readingQuality(raw, value) };
}

export const COMMAND_GROUP = 'channel';
/** Without a hint, a channel still looks for commands this often. */
export const COMMAND_LOOK_MS = 1_000;
/** How often the poll loop reports its counters to the channel's machine. */
export const REPORT_MS = 1_000;

interface PollCounts {
  readonly bad: number;
  readonly missed: number;
  readonly finishedAt: number;
}

export function channelActorId(channel: ChannelConfig): string {
  return `channel/${channel.id}`;
}

/** `phaseMs`: when in its period the channel polls (pollPhases); by default an offset from its id. */
export function channelChild(channel: ChannelConfig, deps: ChannelActorDeps, phaseMs?: number): ChildSpec {
  const id = channelActorId(channel);
  const now = deps.now ?? Date.now;
  return machineChild({
    id,
    registry: deps.registry,
    summarize: (c) => ({
      polls: c.polls,
      missedPolls: c.missedPolls,
      commands: c.commands,
      badPoints: c.badPoints,
      linkErrors: c.linkErrors,
      reconnectAttempt: c.reconnectAttempt,
      lastPollAt: c.lastPollAt,
      lastError: c.lastError,
    }),
    async build() {
      const log = deps.log.child({ actor: id });
      const device = deps.device?.(channel) ?? createDevice(channel, { log, now });
      // Every point is polled: what a point needs to have a value (an address, a waveform) the loader checked.
      const points = channel.points;
      // Report by exception: what was last sent of each point, in flat arrays (no object per point).
      const sentValue = new Float64Array(points.length).fill(Number.NaN);
      const sentQuality: (Quality | undefined)[] = new Array<Quality | undefined>(points.length);
      const sentAt = new Float64Array(points.length);
      const grid = newGrid(channel.id, channel.pollMs, now(), phaseMs);
      let redisEpoch = deps.redis.site.restorations;

      // One poll's batch and what it changes, reused poll after poll (one c2m in flight at a time).
      const batch = new C2mBatch();
      const sentIdx = new Int32Array(points.length);
      const batchValue = new Float64Array(points.length);
      const batchQuality: Quality[] = new Array<Quality>(points.length);

      // The write in flight while Redis is unreachable, and the outage it is part of.
      let inflight: Promise<void> | undefined;
      let inflightError: unknown;
      let outage = { since: 0, unwritten: 0 };
      let unwrittenPolls = 0;
      const outageOver = () => {
        if (outage.unwritten === 0) return;
        const redisOutageMs = now() - outage.since;
        unwrittenPolls += outage.unwritten;
        log.warn(
          { redisOutageMs, unwrittenPolls: outage.unwritten },
          `Redis was unreachable for ${(redisOutageMs / 1000).toFixed(1)} s: ${outage.unwritten} poll(s) could not be written; the current state is written`,
        );
        deps.registry.report(id, { redisOutageMs, unwrittenPolls, redisOutageEndedAt: now() });
        outage = { since: 0, unwritten: 0 };
      };

      /** One poll; undefined when the loop was stopped before anything was written. */
      const poll = async (signal: AbortSignal): Promise<PollCounts | undefined> => {
        const ts = now();
        const missed = claimSlot(grid, ts);
        const readings = await device.read(points, ts);
        if (signal.aborted) return undefined;
        if (inflightError !== undefined) throw inflightError;
        if (inflight || deps.redis.core.unreachableForMs() !== undefined) {
          // Redis is away: this poll is not written (the next written one carries every change since).
          outage.since ||= ts;
          outage.unwritten += 1;
          return { bad: 0, missed, finishedAt: now() };
        }
        batch.clear();
        let bad = 0;
        // Redis lost its data since the last poll: send everything again.
        if (redisEpoch !== deps.redis.site.restorations) {
          redisEpoch = deps.redis.site.restorations;
          sentQuality.fill(undefined);
          // The command group went with the data: make it again now, not at the next look.
          groupReady = false;
          hinted = true;
        }
        for (let i = 0; i < points.length; i++) {
          const p = points[i]!;
          const raw = readings[i] ?? Number.NaN;
          const value = scaled(raw, p);
          const quality = readingQuality(raw, value);
          if (quality !== 'good') bad += 1;
          const refresh = sentQuality[i] !== quality || ts - sentAt[i]! >= channel.integrityMs;
          const k = batch.count;
          if (reportReading(batch, p, value, quality, refresh, sentValue[i]!)) {
            sentIdx[k] = i;
            batchValue[k] = value;
            batchQuality[k] = quality;
          }
        }
        const n = batch.count;
        if (n > 0) {
          const write = deps.redis.telemetry.c2m(channel.id, ts, batch).then(() => {
            recordPoll(n, now() - ts);
            for (let k = 0; k < n; k++) {
              const i = sentIdx[k]!;
              if (!Number.isNaN(batchValue[k]!)) sentValue[i] = batchValue[k]!;
              sentQuality[i] = batchQuality[k];
              sentAt[i] = ts;
            }
          });
          // Redis lost under the call: leave it queued and go on polling; a failure is thrown by the next poll.
          if ((await deps.redis.core.orUnreachable(write)) === UNREACHABLE) {
            outage.since ||= ts;
            outage.unwritten += 1;
            inflight = write.then(
              () => {
                inflight = undefined;
              },
              (e: unknown) => {
                inflightError = e;
                inflight = undefined;
              },
            );
            return { bad, missed, finishedAt: now() };
          }
        }
        outageOver();
        if (bad > 0) log.debug({ bad }, 'readings that are not numbers were stored with quality bad');
        return { bad, missed, finishedAt: now() };
      };

      // Commands: consumed from the channel's stream (consumer group `channel`, consumer = this channel).
      // After a restart the entries delivered before and never acknowledged are executed first.
      let groupReady = false;
      // Made at the first command: most channels never get one, and it is a string and an entry per point.
      let byKey: Map<string, PointConfig> | undefined;
      const execute = async (e: CommandEntry): Promise<void> => {
        const commit = (status: 'confirmed' | 'failed' | 'timeout', message: string, readback: number | null = null) =>
          deps.redis.commands.commandResult(channel.id, e.id, status, message, COMMAND_GROUP, e.entryId, readback);
        if (now() > e.deadline) return commit('timeout', 'expired before it could be written (a late setpoint is not applied)');
        byKey ??= new Map(points.map((p) => [`${p.type}:${p.id}`, p]));
        const p = byKey.get(`${e.type}:${e.point}`);
        if (!p) return commit('failed', `channel ${channel.id} has no point ${e.type}:${e.point}`);
        try {
          await device.write(p, e.value);
        } catch (err) {
          if (isDeviceError(err) && err.transient) throw err; // link down: stays pending, retried after reconnect
          if (isDeviceError(err, 'TIMEOUT')) return commit('timeout', `the device did not answer the write within ${channel.timeoutMs} ms`);
          return commit('failed', `the device refused the write: ${errorMessage(err)}`);
        }
        let raw: RawReading;
        try {
          raw = await device.readBack(p, now());
        } catch (err) {
          if (isDeviceError(err) && err.transient) return commit('confirmed', 'written; the link dropped before the read-back');
          return commit('confirmed', `written; read-back failed: ${errorMessage(err)}`);
        }
        const { value } = decode(raw, p);
        if (value === null) return commit('confirmed', 'written; the read-back was not a number');
        const tolerance = Math.max(1e-6, Math.abs(p.scale) / 2, Math.abs(e.value) * 1e-6);
        if (Math.abs(value - e.value) > tolerance) return commit('failed', `the device holds ${value} after writing ${e.value}`, value);
        return commit('confirmed', 'written and read back', value);
      };
      // Look for commands when a hint came, and at least once a second (a pub/sub hint may be missed).
      let hinted = true;
      let lastLookAt = 0;
      const commandsDue = () => hinted || now() - lastLookAt >= COMMAND_LOOK_MS;
      const commands = async (): Promise<number> => {
        hinted = false;
        lastLookAt = now();
        if (!groupReady) {
          await deps.redis.commands.ensureCommandGroup(channel.id, COMMAND_GROUP);
          groupReady = true;
          let done = 0;
          for (let round = 0; round < 100; round++) {
            const pending = await deps.redis.commands.readCommands(channel.id, COMMAND_GROUP, channel.id, true);
            if (pending.length === 0) break;
            for (const e of pending) await execute(e);
            done += pending.length;
          }
          if (done > 0) log.info({ commands: done }, `executed ${done} command(s) left pending before a restart`);
        }
        let entries: CommandEntry[];
        try {
          entries = await deps.redis.commands.readCommands(channel.id, COMMAND_GROUP, channel.id, false);
        } catch (e) {
          // Redis came back empty: the group went with it; make it again on the next round.
          if (isRedisError(e, REDIS_ERROR_CODES.noGroup)) {
            groupReady = false;
            hinted = true;
            return 0;
          }
          throw e;
        }
        for (const e of entries) await execute(e);
        return entries.length;
      };

      // Between two polls the loop sleeps until the next slot of the grid, or until a command hint wakes it.
      let wake: (() => void) | undefined;
      // A pending hint ends the pause only while commands can run: with Redis unreachable the loop
      // would otherwise spin on resolved promises, starving the timers and I/O that bring Redis back.
      const redisUp = () => deps.redis.core.unreachableForMs() === undefined;
      const pause = (ms: number, signal: AbortSignal) =>
        new Promise<void>((resolve) => {
          if ((hinted && redisUp()) || signal.aborted) return resolve();
          const done = () => {
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            wake = undefined;
            resolve();
          };
          const timer = setTimeout(done, ms);
          signal.addEventListener('abort', done);
          wake = done;
        });

      /** Polls on the grid and runs commands between two polls until stopped; reports its counters about once a second. */
      const polls = async ({ input, signal }: { input: PollLoopInput; signal: AbortSignal }): Promise<void> => {
        let report = { polls: 0, missed: 0, bad: 0, commands: 0, lastPollAt: 0 };
        let reportedAt = 0;
        const flush = () => {
          if (report.polls + report.commands === 0) return;
          input.parent.send({ type: 'channel.polled', ...report });
          report = { polls: 0, missed: 0, bad: 0, commands: 0, lastPollAt: report.lastPollAt };
          reportedAt = now();
        };
        try {
          while (!signal.aborted) {
            await pause(delayToSlot(grid, now()), signal);
            if (signal.aborted) break;
            if (delayToSlot(grid, now()) === 0) {
              const counts = await poll(signal);
              if (!counts) break;
              report.polls += 1;
              report.missed += counts.missed;
              report.bad += counts.bad;
              report.lastPollAt = counts.finishedAt;
            }
            // Commands need Redis: while it is unreachable they wait in their stream, and the polls go on.
            if (!signal.aborted && commandsDue() && redisUp()) report.commands += await commands();
            if (now() - reportedAt >= REPORT_MS) flush();
          }
        } finally {
          if (!signal.aborted) flush(); // what was done before a failure still counts
        }
      };

      /**
       * The link is down (or never came up): every point not already marked is written as
       * `comm-failure` without a value, so that no frozen value reads `good` while the channel
       * reconnects; the first good reading after it refreshes the quality (it changed).
       * Nothing is written while Redis is unreachable (the next poll written carries the state).
       */
      const markLinkDown = async (): Promise<void> => {
        if (inflight || deps.redis.core.unreachableForMs() !== undefined) return;
        const marks = new C2mBatch();
        const marked: number[] = [];
        for (let i = 0; i < points.length; i++) {
          if (sentQuality[i] === 'comm-failure') continue;
          marks.add(points[i]!.type, points[i]!.id, null, 'comm-failure');
          marked.push(i);
        }
        if (marked.length === 0) return;
        await deps.redis.telemetry.c2m(channel.id, now(), marks);
        for (const i of marked) sentQuality[i] = 'comm-failure';
      };

      const machine = channelMachine.provide({
        actions: {
          linkDown: () => {
            void settled(markLinkDown(), { source: 'channel link down', channel: channel.id });
          },
        },
        actors: {
          connect: fromPromise(async () => device.connect()),
          polls: fromPromise(polls),
        },
        delays: {
          reconnectDelay: ({ context }) => {
            const delayMs = backoffDelay(channel.reconnect, context.reconnectAttempt);
            log.warn({ attempt: context.reconnectAttempt + 1, delayMs, err: context.lastError }, `link down; reconnecting in ${delayMs} ms`);
            return delayMs;
          },
        },
      });
      let unsubscribe: (() => Promise<void>) | undefined;
      return {
        machine,
        input: { channelId: channel.id, pollMs: channel.pollMs },
        attach: async (_actor) => {
          unsubscribe = await deps.subscriptions?.on(KEYS.commandHint(channel.id), () => {
            hinted = true;
            wake?.();
          });
        },
        dispose: async () => {
          await unsubscribe?.();
          await device.close();
        },
      };
    },
  });
}

/** Channels: one actor per enabled channel, under their own supervisor. */
export const channelKind: ActorKind = {
  kind: 'channel',
  section: 'channels',
  supervisor: { id: 'channels', strategy: 'one_for_one', policy: (rt) => rt.channels },
  children: (site, deps) => {
    const channels = site.channels.filter((c) => c.enabled);
    const phases = pollPhases(channels, site.runtime.pollGroupPoints);
    return channels.map((c) => channelChild(c, deps, phases.get(c.id)));
  },
};
