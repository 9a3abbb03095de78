/**
 * The embedded history database of `voltage start` and `voltage demo`: when
 * the site's history has a VictoriaMetrics backend without a url, a private
 * `victoria-metrics` from PATH is started for it (on 127.0.0.1:8428 when free,
 * else on a free loopback port) and the backend's url is filled in, so that
 * nothing deeper knows the database was embedded.
 *
 * Data directory: `history.dataDir` (relative to the working directory);
 * without it `voltage start` keeps its data in ./voltage-history and the demo
 * in a temporary directory removed when it stops. Retention is the one
 * VictoriaMetrics setting, `history.retention`. One that dies is started
 * again, with backoff, on the same port and directory (runtime/ownedServers.ts).
 *
 * It also checks, before anything starts, that every InfluxDB token variable
 * is set: a writer without its token would retry a refused write forever.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SiteConfig } from './config/site.js';
import { queryBackend } from './config/history.js';
import { VoltageError } from './errors.js';
import type { Logger } from './logger.js';
import { onPath } from './ownedProcess.js';
import { ownedVictoria } from './ownedServers.js';
import { freePort, portFree } from './redisServer.js';

export interface EmbeddedHistory {
  /** The site with the embedded backend's url filled in (the demo without victoria-metrics: without history). */
  readonly site: SiteConfig;
  /** Where history queries go, if anywhere. */
  readonly queryUrl: string | undefined;
  /** What `voltage demo` prints about it. */
  readonly lines: readonly string[];
  stop(): Promise<void>;
}

const VICTORIA_BIN = 'victoria-metrics';
/** VictoriaMetrics' own default port: a Grafana data source keeps working across restarts. */
const DEFAULT_PORT = 8428;

/** One sentence per InfluxDB backend whose token variable is not set. */
export function missingHistoryTokens(site: SiteConfig, env: NodeJS.ProcessEnv = process.env): string[] {
  return (site.history?.backends ?? [])
    .filter((b) => b.tokenEnv !== undefined && !env[b.tokenEnv])
    .map((b) => `history backend '${b.id}': the environment variable ${b.tokenEnv} (history.backends[].tokenEnv) that should hold its token is not set`);
}

export async function embeddedHistory(site: SiteConfig, mode: 'start' | 'demo', log: Logger): Promise<EmbeddedHistory> {
  const h = site.history;
  const none = async () => undefined;
  if (!h) return { site, queryUrl: undefined, lines: [], stop: none };
  const embedded = h.backends.find((b) => b.url === undefined);
  if (!embedded) {
    const url = queryBackend(h)?.url;
    return { site, queryUrl: url, lines: url ? [`  history   ${url} (history.backends; Grafana: a Prometheus data source at this URL)`] : [], stop: none };
  }
  if (!onPath(VICTORIA_BIN)) {
    const why = `history backend '${embedded.id}' has no url, and ${VICTORIA_BIN} is not on PATH (apt-get install victoria-metrics, or give the backend a url)`;
    if (mode === 'start') throw new VoltageError('config', 'HISTORY_NO_DATABASE', why);
    return { site: { ...site, history: undefined }, queryUrl: undefined, lines: [`  history   off: ${why}`], stop: none };
  }
  const dataDir = h.dataDir !== undefined ? resolve(h.dataDir) : mode === 'start' ? resolve('voltage-history') : undefined;
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const port = (await portFree('127.0.0.1', DEFAULT_PORT)) ? DEFAULT_PORT : await freePort();
  // Restarted on the same port and data directory if it dies (runtime/ownedServers.ts).
  const vm = await ownedVictoria(log, { port, retentionPeriod: h.retention, ...(dataDir ? { dataDir } : {}) });
  const backends = h.backends.map((b) => (b === embedded ? { ...b, url: vm.url } : b));
  const history = { ...h, backends };
  return {
    site: { ...site, history },
    queryUrl: queryBackend(history)?.url,
    lines: [
      `  history   ${vm.url} (private ${VICTORIA_BIN}, pid ${String(vm.current().process.pid)}, restarted if it dies, stops with the demo; retention ${h.retention}; data in ${vm.current().dataDir}${dataDir ? '' : ', removed when it stops'})`,
      `  grafana   a Prometheus data source with URL ${vm.url}`,
    ],
    stop: () => vm.stop(),
  };
}
