/**
 * Connectivity matrices in the upstream e2e "truth table" text form:
 *
 *   -    x/a x/b
 *   x/a  -   .
 *   x/b  X   -
 *
 * A header row of destination pods (first token `-`), one row per source pod. Cells:
 * `.` connected, `X` blocked, `-` self / not checked; for HTTP probes `.` = a 2xx
 * answer, `D` = 403, `X` = no connection, and a three-digit number = that exact status.
 * Tokens are separated by any whitespace, so tabs (as upstream prints) and aligned
 * spaces both parse.
 */

export type Cell = '.' | 'X' | 'D' | '-' | number;

export interface Matrix {
  froms: string[];
  tos: string[];
  /** cells[from][to] */
  cells: Record<string, Record<string, Cell>>;
}

/** Observed value of one probe cell: connected or not, or an HTTP status (false = none). */
export type Observed = boolean | number;

export interface Mismatch {
  port: number;
  protocol: string;
  /** The probe's HTTP request, for HTTP probes (an extension of the SCENARIOS.md result). */
  http?: unknown;
  from: string;
  to: string;
  expected: boolean | number | string;
  observed: Observed | null;
}

function cell(token: string, where: string): Cell {
  if (token === '.' || token === 'X' || token === 'D' || token === '-') return token;
  if (/^[1-5]\d\d$/.test(token)) return Number(token);
  throw new Error(`${where}: cell "${token}" is not one of . X D - or an HTTP status`);
}

/** Parses a truth table; throws an Error naming the row on malformed input. */
export function parseMatrix(text: string): Matrix {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const header = lines[0]?.split(/\s+/);
  if (!header || header[0] !== '-' || header.length < 2) {
    throw new Error('matrix must start with a header row "-  <ns/pod> ..."');
  }
  const tos = header.slice(1);
  const froms: string[] = [];
  const cells: Record<string, Record<string, Cell>> = {};
  for (const name of tos) checkPodName(name, 'header');
  if (new Set(tos).size !== tos.length) throw new Error('header names a pod twice');
  for (const [i, line] of lines.slice(1).entries()) {
    const tokens = line.split(/\s+/);
    const from = tokens[0]!;
    const where = `row ${i + 1} (${from})`;
    checkPodName(from, where);
    if (cells[from]) throw new Error(`${where}: pod listed twice`);
    if (tokens.length - 1 !== tos.length) {
      throw new Error(`${where}: has ${tokens.length - 1} cells, header has ${tos.length}`);
    }
    froms.push(from);
    const row: Record<string, Cell> = {};
    tos.forEach((to, j) => { row[to] = cell(tokens[j + 1]!, where); });
    cells[from] = row;
  }
  if (froms.length === 0) throw new Error('matrix has no rows');
  return { froms, tos, cells };
}

function checkPodName(name: string, where: string): void {
  if (!/^[a-z0-9-]+\/[a-z0-9-]+$/.test(name)) throw new Error(`${where}: "${name}" is not <namespace>/<pod>`);
}

/** The cell symbol for an observed value. */
export function observedCell(v: Observed | undefined, http: boolean): string {
  if (v === undefined) return '?';
  if (!http) return v === true ? '.' : 'X';
  if (v === false) return 'X';
  if (typeof v === 'number' && v >= 200 && v < 300) return '.';
  if (v === 403) return 'D';
  return String(v);
}

/**
 * Formats a matrix with aligned columns. `mark(from, to)` true appends `!` to a cell
 * (used to highlight mismatches; the result then no longer parses, by design).
 */
export function formatMatrix(
  pods: readonly string[],
  value: (from: string, to: string) => string,
  mark: (from: string, to: string) => boolean = () => false,
): string {
  const width = Math.max(1, ...pods.map((p) => p.length)) + 1;
  const pad = (s: string) => s.padEnd(width);
  const rows = [[pad('-'), ...pods.map(pad)].join(' ').trimEnd()];
  for (const from of pods) {
    const cells = pods.map((to) => {
      const v = from === to ? '-' : value(from, to);
      return pad(from !== to && mark(from, to) ? `${v}!` : v);
    });
    rows.push([pad(from), ...cells].join(' ').trimEnd());
  }
  return rows.join('\n');
}

/** Formats a matrix value map as parseable text. */
export function formatMatrixCells(m: Matrix): string {
  const pods = [...new Set([...m.froms, ...m.tos])];
  if (m.froms.length === m.tos.length && m.froms.every((f, i) => f === m.tos[i])) {
    return formatMatrix(pods, (f, t) => String(m.cells[f]?.[t] ?? '-'));
  }
  const width = Math.max(1, ...pods.map((p) => p.length)) + 1;
  const pad = (s: string) => s.padEnd(width);
  const rows = [[pad('-'), ...m.tos.map(pad)].join(' ').trimEnd()];
  for (const f of m.froms) rows.push([pad(f), ...m.tos.map((t) => pad(String(m.cells[f]?.[t] ?? '-')))].join(' ').trimEnd());
  return rows.join('\n');
}

/** Whether an observed value satisfies an expected cell. `-` matches anything. */
export function cellMatches(expected: Cell, observed: Observed | undefined, http: boolean): boolean {
  if (expected === '-') return true;
  if (observed === undefined) return false;
  if (!http) {
    if (expected === '.') return observed === true;
    if (expected === 'X') return observed === false;
    return false;
  }
  if (expected === 'X') return observed === false;
  if (typeof observed !== 'number') return false;
  if (expected === '.') return observed >= 200 && observed < 300;
  if (expected === 'D') return observed === 403;
  return observed === expected;
}

function expectedValue(c: Cell, http: boolean): boolean | number | string {
  if (!http) return c === '.';
  if (c === '.') return '2xx';
  if (c === 'D') return 403;
  if (c === 'X') return false;
  return c;
}

/**
 * Cells where `observed` (results[from][to]) differs from the expected matrix. Cells of
 * the matrix naming pods absent from the results count as mismatches with
 * `observed: null`, so a stale matrix never passes silently.
 */
export function computeMismatches(
  probe: { port: number; protocol: string; http?: unknown },
  expected: Matrix,
  results: Record<string, Record<string, Observed>>,
): Mismatch[] {
  const http = probe.http !== undefined;
  const out: Mismatch[] = [];
  for (const from of expected.froms) {
    for (const to of expected.tos) {
      if (from === to) continue;
      const want = expected.cells[from]![to]!;
      if (want === '-') continue;
      const got = results[from]?.[to];
      if (!cellMatches(want, got, http)) {
        const m: Mismatch = {
          port: probe.port, protocol: probe.protocol, from, to,
          expected: expectedValue(want, http), observed: got === undefined ? null : got,
        };
        if (http) m.http = probe.http;
        out.push(m);
      }
    }
  }
  return out;
}
