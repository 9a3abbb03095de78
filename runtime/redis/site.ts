/**
 * The site in Redis: the mapping between channel points and model values
 * (staged in chunks, then swapped in at once by site_load, so readers never
 * see half a mapping) and the site's description. Kept in memory to restore
 * both when Redis lost them.
 */
import type { SiteDescription, SiteJson } from '../domain/site.js';
import type { Logger } from '../logger.js';
import { redisCall, type RedisCore } from './core.js';
import { KEYS } from './keys.js';

/** Arguments per site_stage call (two per mapping entry). */
const STAGE_CHUNK = 10_000;

/** The loaded site as text, not 2 strings a point. */
interface StagedSite {
  readonly json: string;
  readonly mapping: string;
  readonly size: number;
  readonly controls: string;
  readonly controlCount: number;
  readonly models: readonly string[];
}

function asText(map: ReadonlyMap<string, string>): string {
  let text = '';
  for (const [k, v] of map) text += `${k} ${v}\n`;
  return text;
}

export class SiteRedis {
  private loaded: StagedSite | undefined;
  /** How often the site had to be restored because Redis lost it: writers that send only changes send everything again after it grows. */
  restorations = 0;

  constructor(
    private readonly core: RedisCore,
    private readonly log?: Logger,
  ) {
    core.onReload(() => this.restore());
  }

  /** Loads the library and the site's mapping; remembered so that a reload can restore both. */
  async load(site: SiteDescription): Promise<void> {
    this.loaded = {
      json: site.json,
      mapping: asText(site.mapping),
      size: site.mapping.size,
      controls: asText(site.controls),
      controlCount: site.controls.size,
      models: site.models,
    };
    await this.core.loadLibrary();
    await this.stageAndLoad(this.loaded);
  }

  /** After the library was loaded again: the site too, when Redis lost it. */
  private async restore(): Promise<void> {
    const site = this.loaded;
    if (site && (await redisCall('EXISTS', () => this.core.client.exists(KEYS.siteConfig))) === 0) {
      await this.stageAndLoad(site);
      this.restorations += 1;
      // Once per loss: restorers run one reload at a time, and the next finds site:config there.
      this.log?.warn(
        { restorations: this.restorations },
        'Redis lost its data (FLUSHALL, or a restart without persistence): the site, its mappings and the actor records were written again; command records it held are lost',
      );
    }
  }

  private async stageAndLoad(site: StagedSite): Promise<void> {
    await redisCall('DEL', () => this.core.client.del(KEYS.mappingC2mNext, KEYS.mappingM2cNext));
    for (const [kind, text] of [
      ['c2m', site.mapping],
      ['m2c', site.controls],
    ] as const) {
      let pairs: string[] = [];
      const flush = async () => {
        if (pairs.length === 0) return;
        await this.core.fcall('site_stage', { kind, pairs });
        pairs = [];
      };
      for (const line of text.split('\n')) {
        if (!line) continue;
        const sp = line.indexOf(' ');
        pairs.push(line.slice(0, sp), line.slice(sp + 1));
        if (pairs.length >= STAGE_CHUNK) await flush();
      }
      await flush();
    }
    await this.core.fcall('site_load', { json: site.json, mappingCount: site.size, controlCount: site.controlCount, models: site.models });
  }

  /** The site as loaded (the JSON that describeSite made), or undefined before any load. */
  async description(): Promise<SiteJson | undefined> {
    const text = await redisCall('GET', () => this.core.client.get(KEYS.siteConfig));
    return text ? (JSON.parse(text) as SiteJson) : undefined;
  }

  /**
   * The measurement mapping as loaded: channel:type:point → model:name, read at once. From the flat reply:
   * ioredis's hgetall makes an object of it first, which for a 100k-entry mapping took twice as long (~500 against
   * ~250 ms here, V8's dictionary objects).
   */
  async c2mMapping(): Promise<Map<string, string>> {
    const flat = (await redisCall('HGETALL', () => this.core.client.call('HGETALL', KEYS.mappingC2m))) as string[];
    const out = new Map<string, string>();
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, flat[i + 1]!);
    return out;
  }

  /**
   * The same in rounds of about `count` entries (HSCAN; an entry present throughout is seen at least once), for a
   * reader whose thread must stay free meanwhile: the gateway links its feed while it already answers REST, and one
   * read of a 100k-entry mapping held its thread ~1 s (one 3 MB reply decoded in one piece).
   */
  async *c2mMappingRounds(count = 1000): AsyncGenerator<Array<readonly [string, string]>> {
    let cursor = '0';
    do {
      const [next, flat] = await redisCall('HSCAN', () => this.core.client.hscan(KEYS.mappingC2m, cursor, 'COUNT', count));
      const round: Array<readonly [string, string]> = [];
      for (let i = 0; i + 1 < flat.length; i += 2) round.push([flat[i]!, flat[i + 1]!]);
      yield round;
      cursor = next;
    } while (cursor !== '0');
  }

  /** The mapping's generation (site_load moves it on with every load), or null when there is none (no site loaded, FLUSHALL). */
  c2mGeneration(): Promise<string | null> {
    return redisCall('GET', () => this.core.client.get(KEYS.mappingC2mGeneration));
  }

  /** The version of the Functions library Redis has loaded. */
  libraryVersion(): Promise<string> {
    return this.core.libraryVersion();
  }
}
