/**
 * The `voltage` command. Each sub-command is a small function; exit codes:
 * 0 done, 1 the runtime failed (root escalation), 2 bad usage or bad config.
 */
import type { CloudLinkConfig } from './config/cloud.js';
import { startEmbeddedBroker } from './embeddedBroker.js';
import { parseArgs } from 'node:util';
import { runRuleTest } from './domain/ruleSim.js';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfig } from './config/load.js';
import { heapGrowingPercent } from './config/site.js';
import { jsonSchema } from './config/schema.js';
import type { SiteConfig } from './config/site.js';
import { ConfigError, errorMessage, formatIssue } from './errors.js';
import { createLogger, type Logger } from './logger.js';
import { openRedis, readyWithin, redactUrl, within } from './redis/connect.js';
import { m2cRefusal } from './redis/commands.js';
import { KEYS } from './redis/keys.js';
import { VoltageRedis } from './redis/voltageRedis.js';
import { tmpdir, userInfo } from 'node:os';
import { removeStaleTempDirs } from './ownedProcess.js';
import { ownedRedis, type OwnedRedis } from './ownedServers.js';
import { freePort, portFree } from './redisServer.js';
import { randomBytes } from 'node:crypto';
import type { ChannelConfig, ModbusChannelConfig, Role } from './config/schema.js';
import { startRuntime, type RunningRuntime } from './runtime.js';
import { statusReport, watchStatus } from './status.js';
import { alarmsCommand } from './alarmsReport.js';
import { cloudCommand } from './cloudReport.js';
import { startSim } from './sim.js';
import { failCurrentActor } from './actorHost.js';
import { installFaultHandlers, useReporterLogger } from './reporter.js';
import { ModbusLink } from '../actors/modbus/ModbusLink.js';
import { isModbusChannel } from '../actors/modbus/protocol.js';
import type { Fault } from '../actors/modbus/device.js';
import { embeddedHistory, missingHistoryTokens, type EmbeddedHistory } from './embeddedHistory.js';

const DEFAULT_CONFIG = fileURLToPath(new URL('../config', import.meta.url));
const DEFAULT_REDIS = 'redis://127.0.0.1:6379';

const USAGE = `voltage — edge energy-management runtime

usage: voltage <command> [--config DIR]

commands:
  start      run the site in --config against Redis at $REDIS_URL (default ${DEFAULT_REDIS})
  demo       run the example site with a private redis-server (unless $REDIS_URL is set)
             and a private victoria-metrics for its history (unless history has a url)
  validate   check a config folder; every problem with file:line:column; exit 2 if any
  status     print the supervisor tree and each actor's state, as recorded in Redis
             (--watch: redraw it every second, or every --interval MS, until Ctrl-C)
  alarms [--active]
             print the site's alarms (state, severity, for how long, message), from Redis
  cloud [LINK] [--refused [--count N]] [--resend [FROM-TO]] [--timeout MS] [--cancel REQUEST]
             the cloud links' counters (sent, refused, parked, dropped, backlog), from Redis;
             --refused: a link's parked messages; --resend: the running link sends its parked
             messages (or seqs FROM-TO) again, out of order, and this waits for the outcome
             (exit 1 when it failed, was cancelled or is not done within --timeout, default
             60000); --cancel: a resend request ends cancelled, what it has not sent stays parked
  sim        serve the site's Modbus channels from simulated devices (--fault CH:UNIT=MODE,
             MODE one of no-answer, exception, slow, drop; repeatable)
  plan       print each Modbus channel's coalesced read plan
  control MODEL NAME VALUE [--timeout MS]
             send a control command and wait for its result (exit 0 confirmed,
             1 failed, timed out or still pending, 2 rejected)
  rules      print each rule: state, priority, counters, why it is blocked, its deadlines
  rules test run the rule test cases of --config (ruleTests) on a simulated clock, with no
             Redis and no device; each case passed or failed with the difference; exit 1 if any fails
  schema     print the config JSON Schema (for editors)
  help       this text

options:
  --config DIR   config folder (default: the example site, ${DEFAULT_CONFIG})
`;

function load(dir: string): SiteConfig | undefined {
  try {
    return loadConfig(dir);
  } catch (e) {
    if (e instanceof ConfigError) {
      for (const i of e.issues) process.stderr.write(`${formatIssue(i)}\n`);
      process.stderr.write(`\n${e.issues.length} problem(s) in ${dir}; nothing was started.\n`);
      return undefined;
    }
    throw e;
  }
}

function summary(site: SiteConfig): string {
  const points = site.channels.reduce((n, c) => n + c.points.length, 0);
  const calcs = site.models.reduce((n, m) => n + m.calculations.length, 0);
  return `${site.channels.length} channel(s) with ${points} point(s), ${site.models.length} model(s) with ${calcs} calculation(s), ${site.alarms.length} alarm(s)`;
}

/**
 * SIGINT and SIGTERM while this process stops what it started: the first calls `first`; the handlers stay, so
 * that a second (an impatient Ctrl-C) is said and waited out rather than ending Node at once, which left the
 * servers it started running (a signal's default death runs no exit hook); a third ends the process now,
 * through its exit hook, which kills those servers (killOnExit) and then removes the temporary directories
 * made for them (ownedTempDir). Returns what removes the handlers.
 */
function onStopSignals(first: (signal: NodeJS.Signals) => void): () => void {
  let seen = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    seen++;
    if (seen === 1) first(signal);
    else if (seen === 2) process.stderr.write(`${signal}: stopping already; once more to stop at once (the servers it started are killed)\n`);
    else process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/** Runs until SIGINT/SIGTERM (exit 0, tree stopped in reverse order) or root escalation (exit 1). */
async function runUntilSignal(rt: RunningRuntime, log: Logger, cleanup: () => Promise<void> = async () => undefined): Promise<number> {
  const signal = new Promise<string>((res) => {
    onStopSignals(res);
    // Launchers such as `npx` exit on SIGTERM without forwarding it: when the process that
    // started us is gone (we were re-parented), stop as if the signal had reached us.
    const parent = process.ppid;
    const watch = setInterval(() => {
      if (process.ppid !== parent) res('parent exited');
    }, 1_000);
    watch.unref();
  });
  const outcome = await Promise.race([signal.then((s) => ({ signal: s })), rt.exited.then((r) => ({ exit: r }))]);
  if ('signal' in outcome) {
    log.info(`${outcome.signal}: stopping the tree`);
    await rt.stop();
    await cleanup();
    return 0;
  }
  const reason = outcome.exit;
  log.fatal(
    reason.kind === 'error' ? { err: reason.error } : { reason: 'normal' },
    `the supervisor tree gave up: ${reason.kind === 'error' ? errorMessage(reason.error) : 'root exited'}`,
  );
  await rt.stop();
  await cleanup();
  return 1;
}

/**
 * Until the tree runs (startRuntime waits for Redis as long as it takes), SIGINT and SIGTERM stop what
 * was started for it (the embedded VictoriaMetrics, the demo's servers) and exit 0: Node's default
 * ended the process at once and left them running. Returns the release, called once the tree runs.
 */
function stopOnSignalWhileStarting(cleanup: () => Promise<void>): () => void {
  return onStopSignals((signal) => {
    process.stderr.write(`${signal} while starting: stopping what was started\n`);
    void cleanup().finally(() => process.exit(0));
  });
}

/**
 * runtime.heapGrowingPercent: V8 reads the flag each time it sets the old generation's next limit (after a full GC),
 * so setting it here, before the site's load, holds for the whole run. The process's own flags (runtime/bin/voltage.js)
 * stay as they are for a site without it.
 */
function useHeapGrowth(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}

async function startSite(
  site: SiteConfig,
  opts: { redisUrl?: string; gatewayTokens?: ReadonlyArray<{ name: string; role: Role; token: string }> } = {},
): Promise<{ rt: RunningRuntime; log: Logger }> {
  const log = createLogger(site.runtime.log.level);
  // From here on, errors without a caller are logged, and a fault fails its actor (or, outside any, ends the process non-zero).
  useReporterLogger(log);
  installFaultHandlers({ log, failActor: failCurrentActor });
  useHeapGrowth(heapGrowingPercent(site));
  const rt = await startRuntime(site, { redisUrl: opts.redisUrl ?? process.env.REDIS_URL ?? DEFAULT_REDIS, log, gatewayTokens: opts.gatewayTokens ?? [] });
  return { rt, log };
}

/** The site with its embedded VictoriaMetrics running (when it has one), or undefined after saying why not. */
async function startHistory(site: SiteConfig, mode: 'start' | 'demo'): Promise<EmbeddedHistory | undefined> {
  const missing = missingHistoryTokens(site);
  if (missing.length > 0) {
    process.stderr.write(`${missing.join('\n')}\nnothing was started.\n`);
    return undefined;
  }
  try {
    return await embeddedHistory(site, mode, createLogger(site.runtime.log.level));
  } catch (e) {
    process.stderr.write(`${errorMessage(e)}\nnothing was started.\n`);
    return undefined;
  }
}

async function cmdStart(dir: string): Promise<number> {
  const loaded = load(dir);
  if (!loaded) return 2;
  const history = await startHistory(loaded, 'start');
  if (!history) return 2;
  const release = stopOnSignalWhileStarting(() => history.stop());
  const started = await startSite(history.site);
  release();
  return runUntilSignal(started.rt, started.log, () => history.stop());
}

/** The site with each simulated device moved to a free TCP port or a pseudo-terminal path of its own where the configured one is taken. */
async function withFreeEndpoints(site: SiteConfig): Promise<SiteConfig> {
  const channels = await Promise.all(
    site.channels.map(async (ch): Promise<ChannelConfig> => {
      if (!isModbusChannel(ch)) return ch;
      if (ch.protocol === 'modbus-tcp' || ch.protocol === 'modbus-rtu-tcp') {
        if (await portFree(ch.host, ch.port)) return ch;
        const moved: ModbusChannelConfig = { ...ch, port: await freePort() };
        return moved;
      }
      if (ch.protocol === 'modbus-rtu' && (existsSync(ch.serial.path) || existsSync(`${ch.serial.path}.sim`))) {
        const moved: ModbusChannelConfig = { ...ch, serial: { ...ch.serial, path: join(tmpdir(), `voltage-${process.pid}-${ch.id}`) } };
        return moved;
      }
      return ch;
    }),
  );
  return { ...site, channels };
}

async function cmdDemo(dir: string): Promise<number> {
  const loaded = load(dir);
  if (!loaded) return 2;
  // A demo killed with kill -9 left its servers' temporary directories (the kernel stopped the servers).
  const stale = removeStaleTempDirs();
  if (stale.length > 0)
    process.stderr.write(`removed ${stale.length} temporary director${stale.length === 1 ? 'y' : 'ies'} left by a demo that was killed: ${stale.join(', ')}\n`);
  const history = await startHistory(loaded, 'demo');
  if (!history) return 2;
  let site = history.site;
  // The demo's own redis-server is a supervised child: when it dies it is started again (runtime/ownedServers.ts).
  let server: OwnedRedis | undefined;
  let url = process.env.REDIS_URL;
  if (!url) {
    server = await ownedRedis(createLogger(site.runtime.log.level));
    url = server.url;
  }
  // The site's Modbus devices are simulated in this process, so that the demo has devices to poll;
  // where the configured port or serial path is taken (another demo), they take free ones.
  let sim: Awaited<ReturnType<typeof startSim>>;
  try {
    site = await withFreeEndpoints(site);
    sim = await startSim(site);
  } catch (e) {
    process.stderr.write(`cannot simulate the site's Modbus devices: ${errorMessage(e)} (is another demo running?)\n`);
    await server?.stop();
    await history.stop();
    return 2;
  }
  // One token per role, made for this demo only, and a free port if the configured one is taken.
  const tokens = (['viewer', 'operator', 'admin'] as const).map((role) => ({ name: `demo-${role}`, role, token: randomBytes(18).toString('base64url') }));
  const gw = site.gateway;
  if (gw && !(await portFree(gw.host, gw.port))) site = { ...site, gateway: { ...gw, port: await freePort() } };
  // Cloud links to port 0 of this machine uplink to an embedded broker on a free port.
  const broker = site.cloud?.links.some(isLocalLink) ? await startEmbeddedBroker() : undefined;
  if (broker && site.cloud) site = { ...site, cloud: { ...site.cloud, links: site.cloud.links.map((l) => (isLocalLink(l) ? { ...l, url: broker.url } : l)) } };
  const cleanup = async () => {
    await sim.stop();
    await broker?.stop();
    await server?.stop();
    await history.stop();
  };
  const release = stopOnSignalWhileStarting(cleanup);
  const started = await startSite(site, { redisUrl: url, gatewayTokens: tokens });
  release();
  const api = site.gateway ? `http://${site.gateway.host}:${site.gateway.port}` : undefined;
  const lines = [
    '',
    'VoltageEMS demo is running',
    `  site      ${site.runtime.site}: ${summary(site)}`,
    `  config    ${site.dir}`,
    `  redis     ${redactUrl(url)}${server ? ` (private redis-server, pid ${String(server.current().process.pid)}, restarted if it dies, stops with the demo)` : ' (from $REDIS_URL)'}`,
    `  tree      REDIS_URL=${redactUrl(url)} npx voltage status`,
    `  values    redis-cli -u ${redactUrl(url)} HGETALL ${KEYS.model('site')}`,
    `  live      redis-cli -u ${redactUrl(url)} PSUBSCRIBE '${KEYS.modelUpdates}'`,
    ...sim.channels.map((c) => `  device    simulated Modbus channel ${c.channel.id} (${c.channel.protocol}) at ${c.endpoint}`),
    `  control   REDIS_URL=${redactUrl(url)} npx voltage control gw export_limit 50`,
    ...(api
      ? [
          `  api       ${api}/health   ${api}/api/v1/openapi.json   ws${api.slice(4)}/ws?token=…`,
          ...tokens.map((t) => `  token     ${t.role.padEnd(8)} ${t.token}`),
          `  try       curl -H 'Authorization: Bearer ${tokens[0]!.token}' ${api}/api/v1/models/site`,
          ...(history.queryUrl
            ? [`  query     curl -H 'Authorization: Bearer ${tokens[0]!.token}' '${api}/api/v1/history?series=model/site/load&from=-5m&step=10s'`]
            : []),
        ]
      : []),
    ...history.lines,
    ...(broker ? [`  cloud     mosquitto_sub -h 127.0.0.1 -p ${broker.port} -t 'voltage/#' -v   (embedded MQTT broker)`] : []),
    '  Ctrl-C stops it.',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return runUntilSignal(started.rt, started.log, cleanup);
}

/** A cloud link to port 0 of this machine: the demo points it at its embedded broker (never a broker it did not start). */
function isLocalLink(l: CloudLinkConfig): boolean {
  return /^mqtt:\/\/(127\.0\.0\.1|localhost):0\/?$/.test(l.url);
}

/** `watchMs`: redraw every so many ms until SIGINT/SIGTERM (exit 0); undefined: print once. */
async function cmdStatus(watchMs?: number): Promise<number> {
  const url = process.env.REDIS_URL ?? DEFAULT_REDIS;
  const log = createLogger('error');
  const client = openRedis(url, log, 'status');
  try {
    await readyWithin(client, url, 5_000);
    const redis = new VoltageRedis(client, { outboxMaxMB: 1 }, { log });
    if (watchMs !== undefined) {
      const stop = new Promise<void>((res) => {
        process.once('SIGINT', () => res());
        process.once('SIGTERM', () => res());
        process.stdout.once('error', () => res()); // the reader of a pipe is gone (`| head`)
      });
      await watchStatus(redis, { intervalMs: watchMs, out: process.stdout, stop });
      return 0;
    }
    process.stdout.write((await statusReport(redis)).text);
    return 0;
  } catch (e) {
    process.stderr.write(`voltage status: ${errorMessage(e)}\n`);
    return 2;
  } finally {
    client.disconnect();
  }
}

const FAULTS: Readonly<Record<string, Fault>> = {
  'no-answer': { kind: 'no-answer' },
  exception: { kind: 'exception', code: 4 },
  slow: { kind: 'slow', delayMs: 2_000 },
  drop: { kind: 'drop' },
  none: { kind: 'none' },
};

async function cmdSim(dir: string, faults: readonly string[]): Promise<number> {
  const site = load(dir);
  if (!site) return 2;
  const sim = await startSim(site);
  for (const f of faults) {
    const m = /^([\w-]+):(\d+)=([\w-]+)$/.exec(f);
    const fault = m ? FAULTS[m[3]!] : undefined;
    if (!m || !fault) {
      process.stderr.write(`--fault ${f}: expected CHANNEL:UNIT=MODE with MODE one of ${Object.keys(FAULTS).join(', ')}\n`);
      await sim.stop();
      return 2;
    }
    sim.setFault(m[1]!, Number(m[2]), fault);
  }
  for (const c of sim.channels) {
    process.stdout.write(`channel ${c.channel.id} (${c.channel.protocol}) at ${c.endpoint}: unit(s) ${[...c.devices.keys()].join(', ')}\n`);
  }
  if (sim.channels.length === 0) process.stdout.write('the site has no Modbus channel to simulate\n');
  await new Promise<void>((res) => {
    process.once('SIGINT', () => res());
    process.once('SIGTERM', () => res());
  });
  await sim.stop();
  return 0;
}

function cmdPlan(dir: string): number {
  const site = load(dir);
  if (!site) return 2;
  for (const ch of site.channels) {
    if (!isModbusChannel(ch)) continue;
    const plan = ModbusLink.planOf(ch);
    process.stdout.write(`channel ${ch.id}: ${ch.points.length} point(s) in ${plan.length} request(s) (max gap ${ch.maxGap})\n`);
    for (const r of plan) {
      const names = r.points.map((m) => {
        const p = ch.points[m.index]!;
        return `${p.type}:${p.id}@+${m.offset}`;
      });
      process.stdout.write(`  unit ${r.unit} fn ${r.fn} address ${r.address} count ${r.count}: ${names.join(' ')}\n`);
    }
  }
  return 0;
}

/** `voltage rules test`: the ruleTests of the config on a simulated clock; exit 1 when a case fails, 2 when the config does not load. */
function cmdRulesTest(dir: string): number {
  const site = load(dir);
  if (!site) return 2;
  if (site.ruleTests.length === 0) {
    process.stdout.write(`${dir}: no rule tests (ruleTests:)\n`);
    return 0;
  }
  let failed = 0;
  for (const tc of site.ruleTests) {
    const unknown = (tc.rules ?? []).filter((id) => !site.rules.some((r) => r.id === id));
    const r = unknown.length
      ? { name: tc.name, passed: false, missing: [`no rule ${unknown.map((u) => `'${u}'`).join(', ')} in this site`], unexpected: [] }
      : runRuleTest(site.rules, tc);
    if (!r.passed) failed++;
    process.stdout.write(`${r.passed ? 'passed' : 'FAILED'}  ${r.name}\n`);
    for (const m of r.missing) process.stdout.write(`    expected, not taken: ${m}\n`);
    for (const u of r.unexpected) process.stdout.write(`    taken, not expected: ${u}\n`);
  }
  process.stdout.write(`\n${site.ruleTests.length - failed} passed, ${failed} failed\n`);
  return failed > 0 ? 1 : 0;
}

/** `voltage rules`: each rule as its actor committed it to Redis (also while the runtime is down). */
async function cmdRules(): Promise<number> {
  const url = process.env.REDIS_URL ?? DEFAULT_REDIS;
  const client = openRedis(url, createLogger('error'), 'rules');
  const redis = new VoltageRedis(client, { outboxMaxMB: 1 });
  try {
    await readyWithin(client, url, 5_000);
    const ids = await redis.rules.ids();
    if (ids.length === 0) process.stdout.write('no rules\n');
    const now = Date.now();
    for (const id of ids) {
      const r = await redis.rules.read(id);
      if (!r) continue;
      const d = r.definition as { priority?: number; when?: string; event?: { kind: string; cron?: string; glob?: string; steps?: string[] } | null } | null;
      const ev = d?.event;
      const on = ev ? ` on ${ev.kind} ${ev.cron ?? ev.glob ?? (ev.steps ?? []).join(' then ')}` : '';
      const due =
        r.state === 'holding'
          ? ` fires in ${Math.max(0, (r.context.holdUntil ?? now) - now)} ms`
          : r.state === 'cooldown'
            ? ` cooldown ends in ${Math.max(0, (r.context.cooldownUntil ?? now) - now)} ms`
            : '';
      const stats = Object.entries(r.stats)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      process.stdout.write(
        `${id.padEnd(24)} ${r.state.padEnd(9)} p=${d?.priority ?? 0}${on} when ${d?.when ?? '?'}${due}${r.context.blocked ? ` BLOCKED: ${r.context.blocked}` : ''}${stats ? `  [${stats}]` : ''}\n`,
      );
    }
    return 0;
  } catch (e) {
    process.stderr.write(`voltage rules: ${errorMessage(e)}\n`);
    return 2;
  } finally {
    client.disconnect();
  }
}

async function cmdControl(args: readonly string[], timeoutMs: number): Promise<number> {
  const [model, name, valueText] = args;
  const value = Number(valueText);
  if (!model || !name || valueText === undefined || valueText.trim() === '' || !Number.isFinite(value)) {
    process.stderr.write('usage: voltage control MODEL NAME VALUE (VALUE a number)\n');
    return 2;
  }
  const url = process.env.REDIS_URL ?? DEFAULT_REDIS;
  const client = openRedis(url, createLogger('error'), 'control');
  const redis = new VoltageRedis(client, { outboxMaxMB: 1 });
  const subs = redis.subscriber();
  try {
    await readyWithin(client, url, 5_000);
    let done: (() => void) | undefined;
    let id = '';
    const finished = new Promise<void>((res) => {
      done = res;
    });
    await subs.on(KEYS.commandResult, (msg) => {
      if (msg.split(' ')[0] === id) done?.();
    });
    try {
      id = await redis.commands.m2c(model, name, value, `cli:${userInfo().username}`, timeoutMs);
    } catch (e) {
      process.stderr.write(`rejected: ${m2cRefusal(e)}\n`);
      return 2;
    }
    process.stdout.write(`${id}: sent ${model}.${name} = ${value}\n`);
    const current = await redis.commands.command(id);
    if (current?.status === 'pending') {
      await within(finished, timeoutMs + 2_000);
    }
    const c = await redis.commands.command(id);
    if (!c || c.status === 'pending') {
      process.stdout.write(
        `${id}: still pending after ${Math.round((timeoutMs + 2_000) / 1000)} s — is the runtime running? (it is kept until its channel takes it; past its deadline it ends as timeout)\n`,
      );
      return 1;
    }
    process.stdout.write(`${id}: ${c.status} — ${c.message}${c.readback !== null ? ` (read back ${c.readback})` : ''}\n`);
    return c.status === 'confirmed' ? 0 : 1;
  } catch (e) {
    process.stderr.write(`voltage control: ${errorMessage(e)}\n`);
    return 2;
  } finally {
    await subs.close();
    client.disconnect();
  }
}

/** A negative number (`voltage control bess1 P -50`) is a value, not an option: it is hidden from parseArgs and restored as a positional. */
const NEGATIVE = /^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const SHIELD = '\u0000neg';
const shieldNegative = (arg: string): string => (NEGATIVE.test(arg) ? SHIELD + arg : arg);
const unshieldNegative = (arg: string): string => (arg.startsWith(SHIELD) ? arg.slice(SHIELD.length) : arg);

export async function main(argv: readonly string[]): Promise<number> {
  const options = {
    config: { type: 'string', short: 'c' },
    help: { type: 'boolean', short: 'h' },
    fault: { type: 'string', multiple: true },
    timeout: { type: 'string' },
    watch: { type: 'boolean', short: 'w' },
    interval: { type: 'string' },
    active: { type: 'boolean' },
    refused: { type: 'boolean' },
    resend: { type: 'boolean' },
    cancel: { type: 'string' },
    count: { type: 'string' },
  } as const;
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof options }>>;
  try {
    parsed = parseArgs({ args: argv.map(shieldNegative), allowPositionals: true, options });
  } catch (e) {
    process.stderr.write(`${errorMessage(e)}\n\n${USAGE}`);
    return 2;
  }
  parsed.positionals = parsed.positionals.map(unshieldNegative);
  const [command = 'help'] = parsed.positionals;
  const dir = resolve(parsed.values.config ?? DEFAULT_CONFIG);
  switch (parsed.values.help ? 'help' : command) {
    case 'start':
      return cmdStart(dir);
    case 'demo':
      return cmdDemo(dir);
    case 'status': {
      const intervalMs = Number(parsed.values.interval ?? '1000');
      if (!Number.isInteger(intervalMs) || intervalMs < 100) {
        process.stderr.write(`--interval ${parsed.values.interval}: expected a whole number of milliseconds, at least 100\n`);
        return 2;
      }
      return cmdStatus(parsed.values.watch ? intervalMs : undefined);
    }
    case 'alarms':
      return alarmsCommand(process.env.REDIS_URL ?? DEFAULT_REDIS, parsed.values.active ?? false);
    case 'cloud':
      return cloudCommand(process.env.REDIS_URL ?? DEFAULT_REDIS, parsed.positionals.slice(1), {
        refused: parsed.values.refused,
        resend: parsed.values.resend,
        cancel: parsed.values.cancel,
        count: parsed.values.count,
        timeout: parsed.values.timeout,
      });
    case 'sim':
      return cmdSim(dir, parsed.values.fault ?? []);
    case 'plan':
      return cmdPlan(dir);
    case 'rules':
      return parsed.positionals[1] === 'test' ? cmdRulesTest(dir) : cmdRules();
    case 'control':
      return cmdControl(parsed.positionals.slice(1), Number(unshieldNegative(parsed.values.timeout ?? '10000')));
    case 'validate': {
      const site = load(dir);
      if (!site) return 2;
      process.stdout.write(`${dir}: OK — ${summary(site)}\n`);
      return 0;
    }
    case 'schema':
      process.stdout.write(`${JSON.stringify(jsonSchema(), null, 2)}\n`);
      return 0;
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}
