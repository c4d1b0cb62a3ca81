// Output helpers: aligned tables for people, JSON for programs. Data goes to stdout only.
// Every table cell is escaped (escapeControl), so a crafted value cannot draw rows of its own.
import { escapeControl, escapeControlKeepLines } from "../util/escape.js";
import { fstatSync } from "node:fs";
import { UsageError } from "../util/errors.js";
import { writeStdout } from "../util/stdio.js";
import type { JsonDocument } from "./json-schemas.js";

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  align?: "left" | "right";
}

/** How tables are laid out: --full keeps every cell whole, --no-legend drops the header line. */
export interface TableLayout {
  full?: boolean;
  legend?: boolean;
  /** Columns to fit; default: the terminal's, else $COLUMNS, else no limit. */
  width?: number;
}

let layout: TableLayout = {};

/** The CLI sets this from a command's --full / --no-legend before it prints. */
export function setTableLayout(options: { full?: boolean | undefined; legend?: boolean }): void {
  layout = {
    ...(options.full === undefined ? {} : { full: options.full }),
    ...(options.legend === undefined ? {} : { legend: options.legend }),
  };
}

/**
 * The width tables are fitted to: the terminal's when stdout is one, else $COLUMNS when set (as
 * systemd's tools do), else none (a pipe gets whole cells). process.stdout is made only for a
 * terminal: see util/stdio.ts.
 */
export function outputWidth(env: NodeJS.ProcessEnv = process.env): number {
  const fromEnv = Number(env.COLUMNS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return fromEnv;
  try {
    if (fstatSync(1).isCharacterDevice() && process.stdout.isTTY && process.stdout.columns > 0)
      return process.stdout.columns;
  } catch {
    // no stdout: no limit
  }
  return Infinity;
}

/** Narrows the widest columns, one column at a time, until the row fits `width` (or cannot). */
function fitWidths(widths: number[], minimums: readonly number[], width: number): void {
  let excess = widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1) - width;
  while (excess > 0) {
    let widest = -1;
    for (let i = 0; i < widths.length; i++)
      if ((widths[i] as number) > (minimums[i] as number))
        if (widest < 0 || (widths[i] as number) > (widths[widest] as number)) widest = i;
    if (widest < 0) return;
    const second = Math.max(minimums[widest] as number, ...widths.filter((_, i) => i !== widest));
    const cut = Math.max(1, Math.min(excess, (widths[widest] as number) - second));
    widths[widest] = (widths[widest] as number) - cut;
    excess -= cut;
  }
}

/** `text` in `width` columns: cut with an ellipsis when longer. */
function ellipsize(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

/**
 * The rows as an aligned table, fitted to the output's width unless --full: the widest columns
 * are narrowed first (the first column last) and their cells end in "…". Widths are found in one loop over the rows
 * (never by spreading them into Math.max, which overflows the stack past ~125,000 rows), and
 * lines are joined once.
 */
export function renderTable<T>(
  rows: readonly T[],
  columns: readonly Column<T>[],
  options: TableLayout = layout,
): string {
  const headers = columns.map((c) => escapeControl(c.header));
  const widths = headers.map((h) => h.length);
  const cells: string[][] = new Array<string[]>(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as T;
    const values = new Array<string>(columns.length);
    for (let i = 0; i < columns.length; i++) {
      const v = escapeControl((columns[i] as Column<T>).value(row));
      values[i] = v;
      if (v.length > (widths[i] as number)) widths[i] = v.length;
    }
    cells[r] = values;
  }
  const natural = [...widths];
  if (!options.full) {
    const width = options.width ?? outputWidth();
    // A column keeps its header, or 8 columns, whichever is less than what it holds.
    const minimums = headers.map((h, i) => Math.min(natural[i] as number, Math.max(h.length, 8)));
    if (Number.isFinite(width)) {
      // The first column names the row (an image, a rule): kept whole while the others can give.
      fitWidths(widths, [natural[0] as number, ...minimums.slice(1)], width);
      fitWidths(widths, minimums, width);
      // Still too wide: headers give way too (ellipsized like cells), down to 4 columns.
      fitWidths(
        widths,
        natural.map((n) => Math.min(n, 4)),
        width,
      );
    }
  }
  const line = (values: readonly string[]): string => {
    let out = "";
    for (let i = 0; i < values.length; i++) {
      const w = widths[i] as number;
      const v = ellipsize(values[i] as string, w);
      if (i > 0) out += "  ";
      out += columns[i]?.align === "right" ? v.padStart(w) : v.padEnd(w);
    }
    return out.trimEnd();
  };
  const legend = options.legend !== false;
  const lines: string[] = legend ? [line(headers)] : [];
  for (let r = 0; r < cells.length; r++) lines.push(line(cells[r] as string[]));
  return lines.length === 0 ? "" : lines.join("\n") + "\n";
}

/** Prints a table: renderTable escaped every cell already, so its lines are not escaped again. */
export function printTable<T>(rows: readonly T[], columns: readonly Column<T>[]): void {
  writeStdout(renderTable(rows, columns));
}

/** systemd's --json= modes: `short` is one line per document, `pretty` indented. */
export type JsonMode = "pretty" | "short";

let jsonMode: JsonMode = "short";

/**
 * Takes `--json=MODE` out of the command line, as systemd's tools spell it (commander knows only
 * `--json`): pretty and short become `--json` with that mode, off drops it. An unknown mode is a
 * usage error. Arguments after `--` are left alone.
 */
export function takeJsonMode(argv: readonly string[]): string[] {
  const out: string[] = [];
  let operands = false;
  for (const arg of argv) {
    if (operands || !arg.startsWith("--json=")) {
      if (arg === "--") operands = true;
      out.push(arg);
      continue;
    }
    const mode = arg.slice("--json=".length);
    if (mode === "pretty" || mode === "short") {
      jsonMode = mode;
      out.push("--json");
    } else if (mode !== "off") {
      throw new UsageError(`--json wants pretty, short or off, got ${JSON.stringify(mode)}`);
    }
  }
  return out;
}

export function printJson(value: unknown): void {
  writeStdout(
    (jsonMode === "pretty" ? JSON.stringify(value, null, 2) : JSON.stringify(value)) + "\n",
  );
}

/**
 * Prints one of the documented JSON documents (docs/json/NAME.schema.json) with every key its
 * schema names present, null when the result does not know it.
 */
export async function printJsonAs(name: JsonDocument, value: unknown): Promise<void> {
  const { JSON_SCHEMAS, withEveryKey } = await import("./json-schemas.js");
  printJson(withEveryKey(value, JSON_SCHEMAS[name]));
}

/** Prints text for people; control characters other than its line breaks are escaped. */
export function print(text: string): void {
  const safe = escapeControlKeepLines(text);
  writeStdout(safe.endsWith("\n") ? safe : safe + "\n");
}
