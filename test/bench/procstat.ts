/** CPU and memory of a process, read from /proc (Linux). */
import { readFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';

const TICKS = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;

export interface CpuSample { readonly at: number; readonly cpuMs: number }

export function cpuSample(pid: number): CpuSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { at: performance.now(), cpuMs: (ticks * 1000) / TICKS };
}

/** CPU use between two samples, in % of one core. */
export function cpuPercent(a: CpuSample, b: CpuSample): number {
  return ((b.cpuMs - a.cpuMs) / (b.at - a.at)) * 100;
}

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

export function machine(): string {
  const c = cpus();
  let redis = '';
  try { redis = execSync('redis-server --version').toString().trim().split(' ').slice(0, 3).join(' '); } catch { redis = 'redis-server not found'; }
  return `${c.length} × ${c[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${redis}`;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
