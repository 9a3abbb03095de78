/**
 * `npm run bench`: prints the machine, each workload and its figures as a
 * Markdown table (paste into the README). BENCH_QUICK=1 runs short windows;
 * BENCH_ONLY=kernel,modbus,gateway,feed,pages,cloud,history,alarms,rules runs only those sections;
 * BENCH_RULES_ROWS the rule section's rows (rules per model, default 0,10), BENCH_RULES_MS its measured window, BENCH_RULES_DUMP=<file>
 * each measured command's latency, its rule and commit time, the CPU of the runtime, Redis and the host every 100 ms, and Redis's
 * slow log (calls over 1 ms) and per-command latency (JSON); BENCH_RUNTIME_TRACE=<file> the runtime's hot-path timeline (runtime/trace.ts:
 * c2m and Function calls sent and answered, notifications received, rule steps, GC pauses, a 2 ms timer with the process's CPU);
 * BENCH_RUNTIME_STDOUT=<file> the runtime's stdout (V8's --trace-gc with BENCH_RUNTIME_NODE_ARGS); BENCH_ALARMS_MS sets the alarm section's measured window (the issue's 10 minutes: 600000), BENCH_ALARMS_ROWS its rows
 * (alarms per model, default 0,100); BENCH_FEED_DEVICES=10,50 picks the feed's sizes; BENCH_BASELINE=<dir of
 * another checkout, built> adds that build's feed and cloud rows beside this one's. The soak (30 minutes
 * with faults) is not in the default list: BENCH_ONLY=soak, its length BENCH_SOAK_MIN (minutes), a fault
 * every BENCH_SOAK_FAULT_S seconds (120; 20 with BENCH_QUICK=1).
 * `npm run bench` runs this process (the load generator, the subscribers and
 * the WebSocket clients) with a 64 MB young generation: its own garbage
 * collection otherwise shows in the latencies it measures (a third of the
 * REST requests over 1.5 ms fell in one of its pauses).
 */
import { formatRow, HEADER, runStep, type Step } from './kernel.js';
import { machine } from './procstat.js';
import { RULE_HEADER, ruleFormat, ruleParts, ruleRow, type RuleResult } from './rules.js';
import { ALARM_HEADER, alarmFormat, alarmMemory, alarmRow, type AlarmStep } from './alarms.js';
import { MODBUS_HEADER, modbusRow, simulatorCapacity } from './modbus.js';
import { FEED_HEADER, feedRow } from './feed.js';
import { PAGES_HEADER, PAGES_WORKLOAD, pagesRows } from './pages.js';
import { soak } from './soak.js';
import { FANOUT_HEADER, REST_HEADER, fanoutRow, restFloorRow, restRow } from './gateway.js';
import { HISTORY_HEADER, historyRow, QUERY_HEADER, queryRows } from './history.js';
import { CLOUD_HEADER, cloudRows, cloudWorkload, type CloudWorkload } from './cloud.js';

const quick = process.env.BENCH_QUICK === '1';
const only = new Set((process.env.BENCH_ONLY ?? 'kernel,modbus,gateway,feed,pages,cloud,history,alarms,rules').split(',').map((x) => x.trim()));
const windows = quick ? { warmupMs: 2_000, measureMs: 4_000 } : { warmupMs: 4_000, measureMs: 10_000 };

const steps: Step[] = [
  { channels: 10, points: 1000, pollMs: 1000 },
  { channels: 100, points: 1000, pollMs: 1000 },
  { channels: 100, points: 1000, pollMs: 500 },
  { channels: 100, points: 1000, pollMs: 333 },
  { channels: 100, points: 1000, pollMs: 250 },
];

console.log(`# VoltageEMS benchmark — ${new Date().toISOString()}`);
console.log(`machine: ${machine()}`);
if (only.has('kernel')) {
  console.log(`\n## Kernel: virtual channels → c2m → models (warm-up ${windows.warmupMs / 1000} s, measured ${windows.measureMs / 1000} s per row)\n`);
  console.log(HEADER);
  for (const step of steps) {
    const r = await runStep(step, windows);
    console.log(formatRow(step, r));
    if (r.delivered < 0.9 * r.offered) {
      console.log(`\nsaturated: ${Math.round(r.delivered)} of ${Math.round(r.offered)} offered points/s delivered`);
      break;
    }
  }
}

if (only.has('modbus')) {
  console.log(`\n## Modbus TCP: devices → channels → c2m (warm-up ${windows.warmupMs / 1000} s, measured ${windows.measureMs / 1000} s per row)\n`);
  console.log(MODBUS_HEADER);
  for (const devices of [10, 50, 100]) console.log(await modbusRow(devices, 100, windows));

  console.log("\n## The simulator's Modbus TCP server (in the benchmark process; modbus-serial clients reading 100 registers)\n");
  console.log('| connections | requests/s |\n|---|---|');
  for (const c of [1, 16]) console.log(await simulatorCapacity(c, quick ? 2_000 : 4_000));
}

if (only.has('gateway')) {
  const secs = windows.measureMs / 1000;
  console.log('\n## Gateway: REST latency under load (open-loop generator, 32 keep-alive connections)\n');
  console.log(REST_HEADER);
  console.log(await restRow(5_000, secs));
  console.log(await restRow(5_000, secs, { channels: 50, points: 100, pollMs: 100 }));
  console.log(await restFloorRow(5_000, secs));
  console.log('\n## Gateway: WebSocket fan-out\n');
  console.log(FANOUT_HEADER);
  for (const clients of [100, 1_000]) console.log(await fanoutRow(clients, secs));
}

if (only.has('feed')) {
  console.log(
    `\n## Feed: Modbus devices → WebSocket client, every register changing every poll (warm-up ${windows.warmupMs / 1000} s, measured ${Number(process.env.BENCH_FEED_MS ?? windows.measureMs) / 1000} s per row)\n`,
  );
  console.log(FEED_HEADER);
  const baseline = process.env.BENCH_BASELINE;
  const sizes = (process.env.BENCH_FEED_DEVICES ?? '10,50,100').split(',').map(Number);
  const feedWindows = process.env.BENCH_FEED_MS ? { ...windows, measureMs: Number(process.env.BENCH_FEED_MS) } : windows;
  for (const devices of sizes) {
    if (baseline) console.log(await feedRow(devices, feedWindows, baseline, 'before'));
    console.log(await feedRow(devices, feedWindows, '.', baseline ? 'after' : 'this checkout'));
  }
}

if (only.has('pages')) {
  console.log(`\n## Pages: weight and first render (${PAGES_WORKLOAD})\n`);
  console.log(PAGES_HEADER);
  for (const row of await pagesRows()) console.log(row);
  console.log("\ntargets: under 300 kB per page; the dashboard's first values under 1 s");
}

if (only.has('cloud')) {
  const w: CloudWorkload = { channels: 100, points: 10, pollMs: 100, ...windows, outageMs: quick ? 10_000 : 60_000 };
  console.log(
    `\n## Cloud link: MQTT uplink at QoS 1 to mosquitto (warm-up ${w.warmupMs / 1000} s, online ${w.measureMs / 1000} s, outage ${w.outageMs / 1000} s)\n`,
  );
  console.log(`workload: ${cloudWorkload(w)}\n`);
  console.log(CLOUD_HEADER);
  const baseline = process.env.BENCH_BASELINE;
  if (baseline) for (const row of await cloudRows(w, baseline, 'before: ')) console.log(row);
  for (const row of await cloudRows(w, '.', baseline ? 'after: ' : '')) console.log(row);
}

if (only.has('soak')) {
  const minutes = Number(process.env.BENCH_SOAK_MIN ?? (quick ? 3 : 30));
  const faultEveryMs = Number(process.env.BENCH_SOAK_FAULT_S ?? (quick ? 20 : 120)) * 1000;
  const outageMs = quick ? 8_000 : 20_000;
  console.log(
    `\n## Soak: ${minutes} min at 50,000 points/s (50 virtual channels × 1,000 points @ 1 s, Redis with AOF), a fault every ${faultEveryMs / 1000} s (Redis unreachable for ${outageMs / 1000} s)\n`,
  );
  for (const line of await soak({ minutes, faultEveryMs, outageMs, warmupMs: quick ? 5_000 : 20_000 })) console.log(line);
  console.log('\ntargets: 0 writes lost; the longest API answer during a fault under 2.5 s; memory flat');
}

if (only.has('history')) {
  const outageMs = Number(process.env.BENCH_HISTORY_OUTAGE_S ?? (quick ? 10 : 60)) * 1_000;
  console.log(
    `\n## History: a site with every point historized → VictoriaMetrics (measured ${windows.measureMs / 1000} s; then the database stopped for ${outageMs / 1000} s and the backlog drained)\n`,
  );
  console.log(HISTORY_HEADER);
  // BENCH_HISTORY_CHANNELS=100,100once runs only the 100k points/s site, each point kept twice (channel + model) then once
  // (its model value: history channels: false); BENCH_HISTORY_OUTAGE_S the outage (60 s; 10 with BENCH_QUICK=1).
  const rows = (process.env.BENCH_HISTORY_CHANNELS ?? (quick ? '10' : '10,100,100once')).split(',').map((x) => x.trim());
  for (const row of rows) {
    const step: Step = { channels: Number.parseInt(row, 10), points: 1000, pollMs: 1000 };
    console.log(await historyRow({ step, once: row.endsWith('once'), measureMs: windows.measureMs, outageMs }));
  }
  console.log('\n## History queries: 10 series, a year of 1 h tier data and a day of 1 m tier data backfilled\n');
  console.log(QUERY_HEADER);
  for (const row of await queryRows(quick ? 20 : 100)) console.log(row);
  console.log('\ntargets: history lag p99 < 2 s; drain ≥ 3× real time; query p99 < 200 ms');
}

if (only.has('alarms')) {
  const alarmWindows = { warmupMs: quick ? 4_000 : 8_000, measureMs: Number(process.env.BENCH_ALARMS_MS ?? (quick ? 6_000 : 120_000)) };
  console.log(
    `\n## Alarms: detection latency, value generated → event in alarm:events (sine period 60 s, \`above: 90\`; warm-up ${alarmWindows.warmupMs / 1000} s, measured ${alarmWindows.measureMs / 1000} s per row)\n`,
  );
  console.log(ALARM_HEADER);
  const site = { channels: 100, points: 1000, pollMs: 1000, periodMs: 60_000 };
  // BENCH_ALARMS_ROWS=100: only the row with alarms (the 10-minute run does not need the site's own row again).
  for (const alarmsPerModel of (process.env.BENCH_ALARMS_ROWS ?? '0,100').split(',').map(Number)) {
    const step: AlarmStep = { ...site, alarmsPerModel };
    const r = await alarmRow(step, alarmWindows);
    console.log(alarmFormat(step, r));
    // A window of a minute or more (the 10-minute run): the memory through it, to see whether it is flat.
    if (alarmWindows.measureMs >= 60_000) console.log(`\n${alarmMemory(r)}\n`);
  }
  console.log('\ntargets: p99 under 20 ms with 10,000 alarms, 100,000 points/s delivered; RSS flat over the run');
}

if (only.has('rules')) {
  // BENCH_RULES_MS sets the rule section's measured window (6 s quick, 60 s otherwise).
  const ruleWindows = { warmupMs: quick ? 4_000 : 8_000, measureMs: Number(process.env.BENCH_RULES_MS ?? (quick ? 6_000 : 60_000)) };
  console.log(
    `\n## Rules: reaction latency, value generated → command accepted by m2c (sine period 20 s, \`when: p > 90\`, then/else a control; runtime.heapGrowingPercent ${process.env.BENCH_RULES_HEAP_GROWING ?? "the default: 100 with rules, V8's own without"}; warm-up ${ruleWindows.warmupMs / 1000} s, measured ${ruleWindows.measureMs / 1000} s per row)\n`,
  );
  console.log(RULE_HEADER);
  const site = { channels: 100, points: 100, pollMs: 100, periodMs: 20_000 };
  let baseline: RuleResult | undefined;
  const parts: string[] = [];
  // BENCH_RULES_ROWS=10: only the row with rules (rules per model; the share of the CPU then needs the row with 0).
  for (const rulesPerModel of (process.env.BENCH_RULES_ROWS ?? '0,10').split(',').map(Number)) {
    const r = await ruleRow({ ...site, rulesPerModel }, ruleWindows);
    console.log(ruleFormat({ ...site, rulesPerModel }, r, baseline));
    parts.push(ruleParts({ ...site, rulesPerModel }, r));
    baseline ??= r;
  }
  for (const line of parts) console.log(`\n${line}`);
  console.log('\ntargets: p99 under 20 ms with 1,000 rules on 100,000 points/s; at least 10,000 evaluations/s at under 25 % of a core');
}
