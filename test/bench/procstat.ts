/**
 * CPU and memory of a process with its descendants (the runtime's gateway
 * process counts as the runtime's), read from /proc (Linux).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';

const TICKS = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;

export interface CpuSample {
  readonly at: number;
  readonly cpuMs: number;
}

/** The fields of /proc/PID/stat after the command name (field 3 onwards), or undefined once it is gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The process and all its descendants. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = Number(statFields(Number(name))?.[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

export function cpuSample(pid: number): CpuSample {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const fields = statFields(p);
    if (fields) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return { at: performance.now(), cpuMs: (ticks * 1000) / TICKS };
}

/** CPU of the process alone (not its descendants). */
export function ownCpuSample(pid: number): CpuSample {
  const fields = statFields(pid);
  const ticks = fields ? Number(fields[11]) + Number(fields[12]) : 0;
  return { at: performance.now(), cpuMs: (ticks * 1000) / TICKS };
}

/**
 * Context switches of a process's main thread so far (voluntary and not): about how often its
 * event loop was woken. On this VM a wake-up costs far more than most per-point work.
 */
export function wakeups(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
    let n = 0;
    for (const m of status.matchAll(/ctxt_switches:\s+(\d+)/g)) n += Number(m[1]);
    return n;
  } catch {
    return 0;
  }
}

/** CPU use between two samples, in % of one core. */
export function cpuPercent(a: CpuSample, b: CpuSample): number {
  return ((b.cpuMs - a.cpuMs) / (b.at - a.at)) * 100;
}

/** The machine's CPU counters (/proc/stat, all CPUs): total and stolen ticks. */
export interface HostSample {
  readonly total: number;
  readonly steal: number;
  /** Ticks not idle and not waiting for I/O. */
  readonly busy: number;
  /** This process's own CPU time (µs), for `othersPercent`. */
  readonly ownUs: number;
}

export function hostSample(): HostSample {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const own = process.cpuUsage();
  return { total, steal: f[7] ?? 0, busy: total - (f[3] ?? 0) - (f[4] ?? 0), ownUs: own.user + own.system };
}

/**
 * The CPU that processes other than the measured ones and this one took between
 * two samples, in % of one core (what else ran on the machine: a row measured
 * while other work runs on its cores says more about that work).
 */
export function othersPercent(a: HostSample, b: HostSample, measured: readonly number[]): number {
  const total = b.total - a.total;
  if (total <= 0) return 0;
  const cores = cpus().length;
  const busy = ((b.busy - a.busy) / total) * cores * 100;
  const seconds = total / cores / TICKS;
  const own = (b.ownUs - a.ownUs) / 1e4 / seconds;
  return Math.max(0, busy - own - measured.reduce((s, x) => s + x, 0));
}

/**
 * The share of CPU time the hypervisor gave to others while this VM wanted it,
 * between two samples, in %: what a noisy host took from a row.
 */
export function stealPercent(a: HostSample, b: HostSample): number {
  const total = b.total - a.total;
  return total > 0 ? ((b.steal - a.steal) / total) * 100 : 0;
}

export function rssMb(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    try {
      kb += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // gone meanwhile
    }
  }
  return kb > 0 ? kb / 1024 : Number.NaN;
}

export function machine(): string {
  const c = cpus();
  let redis = '';
  try {
    redis = execSync('redis-server --version').toString().trim().split(' ').slice(0, 3).join(' ');
  } catch {
    redis = 'redis-server not found';
  }
  return `${c.length} × ${c[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${redis}`;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
