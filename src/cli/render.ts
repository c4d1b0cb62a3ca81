// Output helpers: aligned tables for people, JSON for programs. Data goes to stdout only.
// Every table cell is escaped (escapeControl), so a crafted value cannot draw rows of its own.
import { escapeControl, escapeControlKeepLines } from "../util/escape.js";
import { writeStdout } from "../util/stdio.js";

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  align?: "left" | "right";
}

/**
 * The rows as an aligned table. Widths are found in one loop over the rows (never by spreading
 * them into Math.max, which overflows the stack past ~125,000 rows), and lines are joined once.
 */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const widths = columns.map((c) => escapeControl(c.header).length);
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
  const line = (values: readonly string[]): string => {
    let out = "";
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as string;
      const w = widths[i] as number;
      if (i > 0) out += "  ";
      out += columns[i]?.align === "right" ? v.padStart(w) : v.padEnd(w);
    }
    return out.trimEnd();
  };
  const lines = new Array<string>(cells.length + 1);
  lines[0] = line(columns.map((c) => escapeControl(c.header)));
  for (let r = 0; r < cells.length; r++) lines[r + 1] = line(cells[r] as string[]);
  return lines.join("\n") + "\n";
}

/** Prints a table: renderTable escaped every cell already, so its lines are not escaped again. */
export function printTable<T>(rows: readonly T[], columns: readonly Column<T>[]): void {
  writeStdout(renderTable(rows, columns));
}

export function printJson(value: unknown): void {
  writeStdout(JSON.stringify(value, null, 2) + "\n");
}

/** Prints text for people; control characters other than its line breaks are escaped. */
export function print(text: string): void {
  const safe = escapeControlKeepLines(text);
  writeStdout(safe.endsWith("\n") ? safe : safe + "\n");
}
