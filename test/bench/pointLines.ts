/**
 * A micro-benchmark of the one reader of c2m's point lines (PointLineReader)
 * through its two users: scanChannelText (samples: the cloud link, decodeEntry)
 * and LineEncoder.channelEntry (line protocol: the history writer). Not in
 * `npm run bench`: `node --import tsx test/bench/pointLines.ts`. Prints ns a
 * point line, the median of 9 rounds of 20,000 entries of 100 lines (90 values
 * as formatValue writes them, 10 with a quality; half feed a model value).
 */
import { LineBuffer, LineEncoder } from '../../actors/history/lines.js';
import { scanChannelText } from '../../actors/history/outbox.js';
import { machine } from './procstat.js';

const LINES = 100;
const ROUNDS = 20_000;
let text = '';
for (let i = 0; i < LINES; i++) text += i % 10 === 9 ? `s ${1000 + i} 1 stale\n` : `m ${1000 + i} ${(i * 12.345).toFixed(3)} \n`;
const mapping = new Map<string, { model: string; name: string }>();
for (let i = 0; i < LINES; i += 2) mapping.set(`1001:m:${1000 + i}`, { model: 'pv1', name: `P${i}` });

function scan(): number {
  let sum = 0;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < ROUNDS; r++)
    scanChannelText('1001', text, (_t, p, v) => {
      sum += p + (v ?? 0);
    });
  const ns = Number(process.hrtime.bigint() - t0);
  if (!Number.isFinite(sum)) throw new Error('unreachable');
  return ns / (ROUNDS * LINES);
}

function lines(): number {
  const enc = new LineEncoder({ channels: true, models: true });
  enc.setMapping(mapping);
  const out = new LineBuffer(1 << 20);
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < ROUNDS; r++) {
    out.rewind(0, 0);
    enc.channelEntry('1001', 1_700_000_000_000 + r, text, out);
  }
  return Number(process.hrtime.bigint() - t0) / (ROUNDS * LINES);
}

const got = { scan: [] as number[], lines: [] as number[] };
for (let k = 0; k < 9; k++) {
  got.scan.push(scan());
  got.lines.push(lines());
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!.toFixed(1);
console.log(`machine: ${machine()}`);
console.log(
  `scanChannelText ${median(got.scan)} ns/line, LineEncoder.channelEntry ${median(got.lines)} ns/line (median of 9 × ${ROUNDS} entries of ${LINES} lines)`,
);
