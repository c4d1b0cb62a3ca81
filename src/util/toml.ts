// TOML for configuration files like registries.conf: smol-toml parses (the whole TOML 1.0 grammar, with
// the line of a syntax error), and a locator here finds the line each table and key was written on,
// because a file's *meaning* can be wrong too (a bad prefix, a mirror without a location) and that
// message must also name file:line. The locator only ever sees text smol-toml has already accepted.
import { parse, TomlDate, TomlError } from "smol-toml";
import { ExtctlError } from "./errors.js";

export type TomlValue = string | number | bigint | boolean | Date | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

export interface TomlDocument {
  /** Tables have no prototype: a key named `__proto__` or `constructor` is only data. */
  root: TomlTable;
  /** The line a table was opened on ([header], [[header]], inline or a dotted key), for messages. */
  lineOf(table: TomlTable): number | undefined;
  /** The line `key` was set on in `table`. */
  keyLine(table: TomlTable, key: string): number | undefined;
}

/** A table, not an array or a date (smol-toml's dates are objects too). */
export function isTomlTable(v: unknown): v is TomlTable {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof TomlDate);
}

/** Parses `text` (the contents of `file`, named in errors). */
export function parseToml(text: string, file: string): TomlDocument {
  const body = text.startsWith("\ufeff") ? text.slice(1) : text;
  let root: TomlTable;
  try {
    root = parse(body);
  } catch (e) {
    if (!(e instanceof TomlError)) throw e;
    // smol-toml's message is "Invalid TOML document: WHAT\n\n<code block>"; the line is ours to print.
    let what = (e.message.split("\n")[0] ?? "").replace(/^Invalid TOML document:\s*/, "");
    // A one-line string running into its newline is reported as a control character; say what it is.
    const line = body.split("\n")[e.line - 1] ?? "";
    if (/control characters/.test(what) && e.column > line.replace(/\r$/, "").length)
      what = "a string is not closed before the end of the line";
    throw new ExtctlError("config", `${file}:${e.line}: ${what}`, {
      hint: "fix the file; it must be TOML (https://toml.io), as containers-registries.conf(5) says",
    });
  }
  return locate(body, root);
}

// ---- where things were written ----

class Locator {
  private pos = 0;
  private line = 1;
  readonly tableLines = new WeakMap<TomlTable, number>();
  readonly keyLines = new WeakMap<TomlTable, Map<string, number>>();
  /** How many [[header]]s have appended to an array so far: the one a later header means. */
  private readonly appended = new WeakMap<TomlValue[], number>();

  constructor(
    private readonly text: string,
    private readonly root: TomlTable,
  ) {}

  run(): void {
    let current = this.root;
    for (;;) {
      this.skipBlank();
      if (this.pos >= this.text.length) return;
      const line = this.line;
      if (this.text[this.pos] === "[") {
        const array = this.text[this.pos + 1] === "[";
        this.pos += array ? 2 : 1;
        const path = this.keyPath();
        this.pos += array ? 2 : 1;
        current = this.header(path, array, line);
        continue;
      }
      const path = this.keyPath();
      this.pos++; // "="
      let table: TomlTable | undefined = current;
      for (const k of path.slice(0, -1)) {
        const next: TomlValue | undefined = table === undefined ? undefined : own(table, k);
        table = isTomlTable(next) ? next : undefined;
        if (table !== undefined) this.markTable(table, line);
      }
      const key = path[path.length - 1] as string;
      const braces = this.skipValue();
      if (table === undefined) continue;
      this.markKey(table, key, line);
      this.markInline(own(table, key), braces, line);
    }
  }

  private header(path: string[], array: boolean, line: number): TomlTable {
    let t: TomlTable = this.root;
    path.forEach((k, i) => {
      const v = own(t, k);
      const last = i === path.length - 1;
      if (Array.isArray(v)) {
        const seen = this.appended.get(v);
        const n = last && array ? (seen ?? 0) + 1 : (seen ?? v.length);
        if (last && array) this.appended.set(v, n);
        const el = v[n - 1];
        if (isTomlTable(el)) t = el;
      } else if (isTomlTable(v)) t = v;
      this.markTable(t, line); // [a.b] makes `a` too, on this line unless it had one
    });
    return t;
  }

  private markTable(t: TomlTable, line: number): void {
    if (!this.tableLines.has(t)) this.tableLines.set(t, line);
  }

  private markKey(t: TomlTable, key: string, line: number): void {
    let keys = this.keyLines.get(t);
    if (keys === undefined) this.keyLines.set(t, (keys = new Map<string, number>()));
    if (!keys.has(key)) keys.set(key, line);
  }

  /**
   * The tables inside a value (`mirror = [ { … }, { … } ]`) in document order are the value's `{`s in
   * text order, so each gets the line of its brace; when the two counts differ (dotted keys inside an
   * inline table make tables without a brace) they all get the key's line.
   */
  private markInline(value: TomlValue | undefined, braces: number[], line: number): void {
    const tables: TomlTable[] = [];
    const walk = (v: TomlValue | undefined): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (isTomlTable(v)) {
        tables.push(v);
        for (const k of Object.keys(v)) walk(v[k]);
      }
    };
    walk(value);
    tables.forEach((t, i) => {
      const at = tables.length === braces.length ? (braces[i] ?? line) : line;
      this.markTable(t, at);
      for (const k of Object.keys(t)) this.markKey(t, k, at);
    });
  }

  private skipBlank(): void {
    for (;;) {
      const c = this.text[this.pos];
      if (c === " " || c === "\t" || c === "\r") this.pos++;
      else if (c === "\n") {
        this.pos++;
        this.line++;
      } else if (c === "#") {
        while (this.pos < this.text.length && this.text[this.pos] !== "\n") this.pos++;
      } else return;
    }
  }

  private skipSpaces(): void {
    while (this.text[this.pos] === " " || this.text[this.pos] === "\t") this.pos++;
  }

  /** `a."b.c".'d'` → ["a", "b.c", "d"]; stops before `=`, `]` or `]]`. */
  private keyPath(): string[] {
    const path: string[] = [];
    for (;;) {
      this.skipSpaces();
      const c = this.text[this.pos];
      if (c === '"' || c === "'") path.push(this.string());
      else {
        const start = this.pos;
        while (/[A-Za-z0-9_-]/.test(this.text[this.pos] ?? "")) this.pos++;
        path.push(this.text.slice(start, this.pos));
      }
      this.skipSpaces();
      if (this.text[this.pos] !== ".") return path;
      this.pos++;
    }
  }

  /** Skips one value to the end of its line; returns the lines of the `{`s it contains, in order. */
  private skipValue(): number[] {
    const braces: number[] = [];
    let depth = 0;
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined) return braces;
      if (c === '"' || c === "'") {
        this.string();
        continue;
      }
      if (c === "#") {
        while (this.pos < this.text.length && this.text[this.pos] !== "\n") this.pos++;
        continue;
      }
      if (c === "\n") {
        if (depth === 0) return braces;
        this.line++;
      } else if (c === "[" || c === "{") {
        if (c === "{") braces.push(this.line);
        depth++;
      } else if (c === "]" || c === "}") depth--;
      this.pos++;
    }
  }

  /** A basic, literal or multi-line string starting here; returns its value (used for quoted keys). */
  private string(): string {
    const q = this.text[this.pos] as string;
    const multi = this.text.startsWith(q.repeat(3), this.pos);
    const close = multi ? q.repeat(3) : q;
    this.pos += close.length;
    let out = "";
    for (;;) {
      if (this.pos >= this.text.length) return out;
      if (this.text.startsWith(close, this.pos)) {
        // A multi-line string may end with up to two extra quotes: """a"""" is `a"`.
        let end = this.pos + close.length;
        if (multi) while (this.text[end] === q && end - this.pos < 5) end++;
        out += this.text.slice(this.pos, end - close.length);
        this.pos = end;
        return out;
      }
      const c = this.text[this.pos] as string;
      if (c === "\n") this.line++;
      if (c === "\\" && q === '"') {
        out += unescape(this.text, this.pos);
        this.pos += escapeLength(this.text, this.pos);
        continue;
      }
      out += c;
      this.pos++;
    }
  }
}

const SIMPLE_ESCAPES: Record<string, string> = {
  b: "\b",
  t: "\t",
  n: "\n",
  f: "\f",
  r: "\r",
  e: "\x1b",
  '"': '"',
  "\\": "\\",
};

function escapeLength(text: string, at: number): number {
  const c = text[at + 1];
  if (c === "u") return 6;
  if (c === "U") return 10;
  if (c === "x") return 4;
  if (c === "\n" || c === " " || c === "\t" || c === "\r") {
    // A line-ending backslash in a multi-line string swallows the whitespace after it.
    let end = at + 1;
    while (/[ \t\r\n]/.test(text[end] ?? "")) end++;
    return end - at;
  }
  return 2;
}

function unescape(text: string, at: number): string {
  const c = text[at + 1] ?? "";
  const simple = SIMPLE_ESCAPES[c];
  if (simple !== undefined) return simple;
  const hex = c === "u" ? 4 : c === "U" ? 8 : c === "x" ? 2 : 0;
  if (hex > 0) return String.fromCodePoint(parseInt(text.slice(at + 2, at + 2 + hex), 16));
  return "";
}

function own(table: TomlTable, key: string): TomlValue | undefined {
  return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

function locate(text: string, root: TomlTable): TomlDocument {
  const l = new Locator(text, root);
  l.run();
  return {
    root,
    lineOf: (t) => l.tableLines.get(t),
    keyLine: (t, k) => l.keyLines.get(t)?.get(k),
  };
}
