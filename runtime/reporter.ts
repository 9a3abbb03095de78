/**
 * The one place for errors that have no caller to return to: a throwing
 * observer, a failing disposer, a fire-and-forget promise, a stop that
 * rejected, an unhandled rejection. Nothing in the runtime swallows an error
 * with an empty catch handler; it reports it here, and here it is logged
 * with pino's `err` serializer, so that its code, context and cause survive.
 * A promise whose rejection is handled later, where it is awaited, says so
 * with `awaitedLater`.
 *
 * Until a process gives it a logger (`useReporterLogger`), reports go to
 * stderr. It never throws: a broken sink falls back to stderr.
 */
import { inspect } from 'node:util';
import { errorMessage } from './errors.js';
import type { Logger } from './logger.js';

/** Where the error happened: `source` names the kind of place (e.g. 'observer', 'dispose'), the rest is context. */
export interface ReportContext {
  readonly source: string;
  readonly [key: string]: string | number | boolean | undefined;
}

export type ReportSink = (error: unknown, context: ReportContext) => void;

const stderrSink: ReportSink = (error, context) => {
  process.stderr.write(`${context.source}: ${inspect(error)} ${JSON.stringify(context)}\n`);
};

let sink: ReportSink = stderrSink;

/** Replaces the sink; returns a function that puts the previous one back (tests). */
export function setReportSink(next: ReportSink): () => void {
  const previous = sink;
  sink = next;
  return () => {
    sink = previous;
  };
}

/** Reports through `log` from now on. */
export function useReporterLogger(log: Logger): () => void {
  return setReportSink((error, context) => log.error({ err: error, ...context }, `${context.source}: ${errorMessage(error)}`));
}

export function report(error: unknown, context: ReportContext): void {
  try {
    sink(error, context);
  } catch (sinkError) {
    stderrSink(error, context);
    stderrSink(sinkError, { source: 'reporter' });
  }
}

/** Runs a promise whose outcome nobody awaits: its rejection is reported, never lost. */
export function reportRejection(promise: PromiseLike<unknown>, context: ReportContext): void {
  Promise.resolve(promise).then(undefined, (e: unknown) => report(e, context));
}

/**
 * Marks a promise that its owner awaits later (a batch sent now and settled in its turn): its rejection is
 * handled there, and must not count as unhandled meanwhile. Returns the promise itself. Not for a promise
 * that nobody awaits: that is reportRejection's.
 */
export function awaitedLater<T>(promise: Promise<T>): Promise<T> {
  promise.then(undefined, handledWhereAwaited);
  return promise;
}

/** A rejection that is handled where the promise is awaited (awaitedLater). */
function handledWhereAwaited(): undefined {
  return undefined;
}

/** `promise`, settled: a rejection is reported and becomes `undefined` (for a cleanup whose failure must not stop the next one). */
export function settled<T>(promise: PromiseLike<T>, context: ReportContext): Promise<T | undefined> {
  return Promise.resolve(promise).then(undefined, (e: unknown) => {
    report(e, context);
    return undefined;
  });
}

/**
 * Starts run together, each giving back its stop. If one fails, the ones that started are
 * stopped (a failing stop reported) before the first failure is thrown: none is left running
 * with its stop lost.
 */
export async function startAll(starts: ReadonlyArray<Promise<() => Promise<void>>>, context: ReportContext): Promise<Array<() => Promise<void>>> {
  const results = await Promise.allSettled(starts);
  const stops = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) return stops;
  for (const stop of stops) await settled(stop(), context);
  throw failed.reason;
}

export interface FaultHandlerOptions {
  readonly log: Logger;
  /** Fails the actor that was running when the fault arose; returns its id, or undefined outside any actor. */
  readonly failActor?: (error: unknown) => string | undefined;
  /** Outside any actor: the process cannot be trusted any more. Default: exit 1. */
  readonly fatal?: (error: unknown) => void;
}

/**
 * Unhandled rejections and uncaught exceptions: always logged; inside an actor
 * they fail that actor (its supervisor decides); outside any actor the process
 * exits non-zero. Never a silent crash. Returns a function that removes the handlers.
 */
export function installFaultHandlers(opts: FaultHandlerOptions): () => void {
  const fatal =
    opts.fatal ??
    (() => {
      opts.log.flush();
      process.exit(1);
    });
  const handle = (origin: string) => (error: unknown) => {
    const actor = opts.failActor?.(error);
    if (actor !== undefined) {
      opts.log.error({ err: error, actor, origin }, `${origin} in actor ${actor}: ${errorMessage(error)}; the actor fails`);
      return;
    }
    opts.log.fatal({ err: error, origin }, `${origin} outside any actor: ${errorMessage(error)}; the process exits`);
    fatal(error);
  };
  const onRejection = handle('unhandled rejection');
  const onException = handle('uncaught exception');
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
