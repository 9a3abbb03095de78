/**
 * Kernel benchmark: virtual channels → c2m → model hashes → model actors'
 * calculations. Workload: C channels × P points (every point changes every
 * poll, deadband 0), one model per channel mapping all its points by name,
 * with 2 calculations each.
 */
import { f, measureSite, type SiteResult, type Windows } from './harness.js';

export interface Step {
  readonly channels: number;
  readonly points: number;
  readonly pollMs: number;
}

export interface StepResult extends SiteResult {
  readonly offered: number;
}

export function siteFiles(step: Step): Record<string, string> {
  const header = 'type,id,name,sim.kind,sim.amplitude,sim.offset,sim.periodMs,sim.phase\n';
  const rows: string[] = [];
  for (let i = 1; i <= step.points; i++) rows.push(`m,${i},p${i},sine,100,0,60000,${((i / step.points) * 6.28).toFixed(4)}`);
  const csv = `${header + rows.join('\n')}\n`;
  const channels: string[] = [];
  const models: string[] = [];
  for (let c = 0; c < step.channels; c++) {
    channels.push(`  - { id: ch${c}, protocol: virtual, pollMs: ${step.pollMs}, pointsFile: points.csv }`);
    models.push(`  - { id: m${c}, template: device, channel: ch${c} }`);
  }
  const measurements = Array.from({ length: step.points }, (_, i) => `      p${i + 1}: {}`).join('\n');
  return {
    'runtime.yaml': 'runtime:\n  site: bench\n  redis: { outboxMaxMB: 64 }\n  log: { level: warn }\n',
    'channels.yaml': `channels:\n${channels.join('\n')}\n`,
    'models.yaml': `templates:\n  device:\n    measurements:\n${measurements}\n    calculations:\n      sum3: { expr: "p1 + p2 + p3" }\n      ratio: { expr: "p2 != 0 ? p1 / p2 : 0" }\nmodels:\n${models.join('\n')}\n`,
    'points.csv': csv,
  };
}

export async function runStep(step: Step, windows: Windows): Promise<StepResult> {
  const r = await measureSite(siteFiles(step), windows);
  return { ...r, offered: (step.channels * step.points * 1000) / step.pollMs };
}

export function formatRow(step: Step, r: StepResult): string {
  return `| ${step.channels} × ${step.points} @ ${step.pollMs} ms | ${f(r.offered)} | ${f(r.delivered)} | ${f(r.p50)} / ${f(r.p99)} | ${f(r.calcP50)} / ${f(r.calcP99)} | ${f(r.runtimeCpu)} % | ${f(r.redisCpu)} % | ${f(r.runtimeRss)} MB | ${f(r.redisRss)} MB | ${f(r.steal, 1)} % |`;
}

export const HEADER =
  '| workload (channels × points @ poll) | offered points/s | delivered points/s | gen→model hash p50 / p99 (ms) | gen→calculated p50 / p99 (ms) | runtime CPU | Redis CPU | runtime RSS | Redis RSS | host steal |\n|---|---|---|---|---|---|---|---|---|---|';
