/**
 * Reads a config folder into one plain object and remembers where every part
 * of it came from, so that any problem found later (schema, references,
 * cycles) is reported at its file, line and column.
 * YAML files hold top-level sections; list sections (channels, models) and
 * map sections (templates) may be split across files, `runtime` may not.
 * CSV point tables are read here too, one point a row.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { CST, isMap, isScalar, isSeq, LineCounter, Parser, parseDocument, type Document, type Node as YamlNode, type YAMLError } from 'yaml';
import type { ConfigIssue, SourcePosition } from '../errors.js';

type Path = readonly (string | number)[];

/** A YAML file: its text is kept, its syntax tree only built again when a position is asked for. */
interface YamlFile {
  readonly file: string;
  readonly text: string;
  parsed?: { doc: Document; lines: LineCounter };
}
interface YamlMount {
  kind: 'yaml';
  source: YamlFile;
  docPath: Path;
}
/** A point table as read once, whichever channels name it: its header and its rows' cells. */
interface CsvTable {
  readonly file: string;
  /** The header's names, and each split at its dots (`sim.kind` → a nested field). */
  readonly names: readonly string[];
  readonly paths: readonly (readonly string[])[];
  readonly headerCols: readonly number[];
  readonly rows: readonly CsvRow[];
}
interface CsvRow {
  readonly line: number;
  /** The row's text, for a cell's column when a problem is reported (found then, not for every row). */
  readonly raw: string;
  /** Each non-empty cell as [index in the header, value]. */
  readonly cells: readonly (readonly [number, unknown])[];
}
interface CsvMount {
  kind: 'csv';
  table: CsvTable;
  row: CsvRow;
}

export interface ConfigSource {
  readonly dir: string;
  readonly raw: Record<string, unknown>;
  readonly issues: ConfigIssue[];
  /** Where the value at `path` of `raw` was written; `key` asks for the key's position rather than the value's. */
  locate(path: Path, opts?: { key?: boolean }): SourcePosition;
}

const LIST_SECTIONS = new Set(['channels', 'models', 'rules']);
const MAP_SECTIONS = new Set(['templates']);

export function readConfigFolder(dirArg: string): ConfigSource {
  const dir = resolve(dirArg);
  const issues: ConfigIssue[] = [];
  const mounts = new Map<string, YamlMount>();
  /** Rows of point tables, by channel index and point index (`channels[ci].points[pi]`): 100k points need no 100k keys. */
  const rows = new Map<number, CsvMount[]>();
  const raw: Record<string, unknown> = {};
  const key = (p: Path) => JSON.stringify(p);
  // Relative to the working directory when the file is under it; else as given (an absolute path, not ../../tmp/…).
  const rel = (f: string) => {
    const r = relative(process.cwd(), f);
    return r === '' || r.startsWith('..') ? f : r;
  };

  const locate = (path: Path, opts: { key?: boolean } = {}): SourcePosition => {
    const [section, ci, points, pi] = path;
    const row = section === 'channels' && points === 'points' && typeof ci === 'number' && typeof pi === 'number' ? rows.get(ci)?.[pi] : undefined;
    if (row) {
      const rest = path.slice(4);
      const col = typeof rest[0] === 'string' ? (csvColumn(row, rest.map(String).join('.')) ?? csvColumn(row, rest[0])) : undefined;
      return { file: row.table.file, line: row.row.line, column: col ?? 1 };
    }
    for (let n = path.length; n >= 0; n--) {
      const m = mounts.get(key(path.slice(0, n)));
      if (!m) continue;
      const rest = path.slice(n);
      return yamlPosition(m, [...m.docPath, ...rest], opts.key === true);
    }
    return { file: rel(dir), line: 1, column: 1 };
  };

  let files: string[] = [];
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    files = readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort();
  } catch (e) {
    issues.push({ file: rel(dir), line: 1, column: 1, code: 'CONFIG_DIR', message: `cannot read config folder: ${(e as Error).message}` });
  }
  if (files.length === 0 && issues.length === 0) {
    issues.push({ file: rel(dir), line: 1, column: 1, code: 'CONFIG_EMPTY', message: 'the config folder holds no .yaml file' });
  }

  for (const name of files) {
    const path = join(dir, name);
    const file = rel(path);
    const text = readFileSync(path, 'utf8');
    const source: YamlFile = { file, text };
    const { doc, lines } = parsedYaml(source);
    for (const err of doc.errors) {
      const pos = lines.linePos(err.message.startsWith('Missing closing') ? (unclosedQuoteAt(text) ?? err.pos[0]) : err.pos[0]);
      issues.push({ file, line: pos.line, column: pos.col, code: 'YAML_SYNTAX', message: yamlErrorMessage(err, text) });
    }
    if (doc.errors.length > 0) continue;
    const content: unknown = doc.toJS();
    source.parsed = undefined; // large sites: do not keep the syntax tree; rebuilt if an error needs a position
    if (content === null || content === undefined) continue;
    const mount: YamlMount = { kind: 'yaml', source, docPath: [] };
    if (typeof content !== 'object' || Array.isArray(content)) {
      issues.push({
        ...yamlPosition(mount, [], false),
        code: 'YAML_SHAPE',
        message: 'a config file must be a mapping of sections (runtime, gateway, channels, templates, models, rules)',
      });
      continue;
    }
    for (const [section, value] of Object.entries(content as Record<string, unknown>)) {
      if (LIST_SECTIONS.has(section) && Array.isArray(value)) {
        const list = (raw[section] ??= []) as unknown[];
        value.forEach((item, i) => {
          mounts.set(key([section, list.length]), { ...mount, docPath: [section, i] });
          list.push(item);
        });
        mounts.set(key([section]), { ...mount, docPath: [section] });
      } else if (MAP_SECTIONS.has(section) && value && typeof value === 'object' && !Array.isArray(value)) {
        const map = (raw[section] ??= {}) as Record<string, unknown>;
        for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
          if (k in map) {
            issues.push({
              ...yamlPosition({ ...mount }, [section, k], true),
              code: 'DUPLICATE_ID',
              message: `${section} '${k}' is defined twice (also at ${formatPos(locate([section, k], { key: true }))})`,
            });
            continue;
          }
          map[k] = v;
          mounts.set(key([section, k]), { ...mount, docPath: [section, k] });
        }
        mounts.set(key([section]), { ...mount, docPath: [section] });
      } else {
        if (section in raw) {
          issues.push({
            ...yamlPosition(mount, [section], true),
            code: 'DUPLICATE_SECTION',
            message: `section '${section}' is also given at ${formatPos(locate([section], { key: true }))}`,
          });
          continue;
        }
        raw[section] = value;
        mounts.set(key([section]), { ...mount, docPath: [section] });
      }
    }
  }

  readPointTables(dir, raw, rows, issues, locate, rel);
  return { dir, raw, issues, locate };
}

function readPointTables(
  dir: string,
  raw: Record<string, unknown>,
  rows: Map<number, CsvMount[]>,
  issues: ConfigIssue[],
  locate: ConfigSource['locate'],
  rel: (f: string) => string,
): void {
  // A table named by many channels (100 devices of one kind) is read and checked once; each channel gets its own point objects.
  const tables = new Map<string, CsvTable | undefined>();
  const channels = Array.isArray(raw.channels) ? (raw.channels as unknown[]) : [];
  channels.forEach((ch, ci) => {
    if (!ch || typeof ch !== 'object') return;
    const channel = ch as Record<string, unknown>;
    const files = typeof channel.pointsFile === 'string' ? [channel.pointsFile] : Array.isArray(channel.pointsFile) ? channel.pointsFile : [];
    if (files.length === 0) return;
    if (channel.points !== undefined && !Array.isArray(channel.points)) return;
    const points = (channel.points ??= []) as unknown[];
    const mounted: CsvMount[] = [];
    rows.set(ci, mounted);
    files.forEach((f, fi) => {
      const at = typeof channel.pointsFile === 'string' ? ['channels', ci, 'pointsFile'] : ['channels', ci, 'pointsFile', fi];
      if (typeof f !== 'string') return;
      const path = resolve(dir, f);
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (e) {
        issues.push({
          ...locate(at),
          code: 'CSV_MISSING',
          message:
            (e as NodeJS.ErrnoException).code === 'ENOENT'
              ? `there is no point table '${f}' (paths are relative to the config folder)`
              : `cannot read point table '${f}': ${(e as Error).message}`,
        });
        return;
      }
      if (!tables.has(path)) tables.set(path, readCsvTable(rel(path), text, issues));
      const table = tables.get(path);
      if (!table) return;
      for (const row of table.rows) {
        const point: Record<string, unknown> = {};
        for (const [i, value] of row.cells) setPath(point, table.paths[i]!, value);
        mounted[points.length] = { kind: 'csv', table, row };
        points.push(point);
      }
    });
    delete channel.pointsFile;
  });
}

/** A point table's header and rows; its problems (syntax, a row's shape) go to `issues` once, whichever channels name it. */
function readCsvTable(file: string, text: string, issues: ConfigIssue[]): CsvTable | undefined {
  let rows: Array<{ record: string[]; raw: string; info: { lines: number } }>;
  try {
    rows = parseCsv(text, { info: true, raw: true, skip_empty_lines: true, trim: true, comment: '#' }) as unknown as typeof rows;
  } catch (e) {
    const err = e as Error & { lines?: number };
    const counts = /^Invalid Record Length: expect (\d+), got (\d+)/.exec(err.message);
    const message = counts ? `this row has ${counts[2]} cells, the header ${counts[1]}` : firstLine(err.message);
    issues.push({ file, line: err.lines ?? 1, column: 1, code: 'CSV_SYNTAX', message });
    return undefined;
  }
  const [header, ...body] = rows;
  if (!header) return { file, names: [], paths: [], headerCols: [], rows: [] };
  const names = header.record;
  const table: CsvTable = { file, names, paths: names.map((n) => n.split('.')), headerCols: cellColumns(header.raw), rows: [] };
  const out = table.rows as CsvRow[];
  for (const row of body) {
    if (row.record.length !== names.length) {
      issues.push({ file, line: row.info.lines, column: 1, code: 'CSV_SHAPE', message: `row has ${row.record.length} cells, the header has ${names.length}` });
      continue;
    }
    const cells: [number, unknown][] = [];
    row.record.forEach((cell, i) => {
      if (cell !== '') cells.push([i, coerceCell(cell)]);
    });
    out.push({ line: row.info.lines, raw: row.raw, cells });
  }
  return table;
}

/** The column where the cell of header name `name` starts in a point's row. */
function csvColumn(m: CsvMount, name: string): number | undefined {
  const i = m.table.names.indexOf(name);
  return i < 0 ? undefined : (cellColumns(m.row.raw)[i] ?? m.table.headerCols[i] ?? 1);
}

function coerceCell(cell: string): unknown {
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(cell)) return Number(cell);
  if (cell === 'true' || cell === 'false') return cell === 'true';
  return cell;
}

function setPath(obj: Record<string, unknown>, parts: readonly string[], value: unknown): void {
  let cur = obj;
  for (let i = 0; i < parts.length - 1; i++) cur = (cur[parts[i]!] ??= {}) as Record<string, unknown>;
  cur[parts[parts.length - 1]!] = value;
}

/** 1-based start column of each cell of one raw CSV line (quotes respected). */
function cellColumns(line: string): number[] {
  const cols = [1];
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) cols.push(i + 2);
  }
  return cols;
}

function parsedYaml(source: YamlFile): { doc: Document; lines: LineCounter } {
  if (!source.parsed) {
    const lines = new LineCounter();
    const doc = parseDocument(source.text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    source.parsed = { doc, lines };
  }
  return source.parsed;
}

function yamlPosition(m: YamlMount, path: Path, wantKey: boolean): SourcePosition {
  const { doc, lines } = parsedYaml(m.source);
  // Walk down as far as the path exists; report the deepest node found.
  let node: unknown = doc.contents;
  let offset = (doc.contents as YamlNode | null)?.range?.[0] ?? 0;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      const keyNode = pair.key as YamlNode;
      offset =
        wantKey && seg === path[path.length - 1]
          ? (keyNode.range?.[0] ?? offset)
          : ((pair.value as YamlNode | null)?.range?.[0] ?? keyNode.range?.[0] ?? offset);
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as YamlNode | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  const pos = lines.linePos(offset);
  return { file: m.source.file, line: pos.line, column: pos.col };
}

/**
 * The yaml library's message, in the terms of the mistake where it is a common one: its own
 * ("Map keys must be unique", "Sequence item without - indicator") names neither the key nor the cause.
 */
function yamlErrorMessage(err: YAMLError, text: string): string {
  const message = firstLine(err.message);
  switch (err.code) {
    case 'DUPLICATE_KEY': {
      const key = /^["']?([^"':\n]*?)["']?\s*:/.exec(text.slice(err.pos[0]))?.[1];
      return key ? `key '${key}' is given twice in this mapping (each key once)` : message;
    }
    case 'MULTILINE_IMPLICIT_KEY':
      return `${message}: is the ':' after a key missing on this line, or is the next line indented deeper than its siblings?`;
    case 'MISSING_CHAR':
      return message.startsWith('Sequence item without') ? `this line is indented differently from the lines of its list item above (${message})` : message;
    default:
      return message;
  }
}

/** Closed quoted scalars (escapes and doubled quotes inside). */
const CLOSED_QUOTED = { 'double-quoted-scalar': /^"(?:[^"\\]|\\[\s\S])*"$/, 'single-quoted-scalar': /^'(?:[^']|'')*'$/ } as const;

/**
 * Where the first quoted scalar that is never closed opens: yaml reports a missing closing quote at the end
 * of the file, where it stopped looking, which says nothing of which quote it was.
 */
function unclosedQuoteAt(text: string): number | undefined {
  let at: number | undefined;
  for (const token of new Parser().parse(text)) {
    if (token.type !== 'document' || at !== undefined) continue;
    CST.visit(token, (item) => {
      for (const t of [item.key, item.value]) {
        if (t && (t.type === 'double-quoted-scalar' || t.type === 'single-quoted-scalar') && !CLOSED_QUOTED[t.type].test(t.source)) at ??= t.offset;
      }
    });
  }
  return at;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

export function formatPos(p: SourcePosition): string {
  return `${p.file}:${p.line}:${p.column}`;
}
