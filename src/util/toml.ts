// A strict reader for the subset of TOML that configuration files like registries.conf use:
// tables, arrays of tables, dotted and quoted keys, strings, booleans, integers, arrays, inline tables.
// Anything outside the subset (floats, dates, multi-line strings) is an error naming file:line.
import { ExtctlError } from "./errors.js";

export type TomlValue = string | number | boolean | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

export interface TomlDocument {
  root: TomlTable;
  /** The line a table was opened on ([header], [[header]] or inline), for messages. */
  lineOf(table: TomlTable): number | undefined;
  /** The line `key` was set on in `table`. */
  keyLine(table: TomlTable, key: string): number | undefined;
}

const BARE_KEY = /[A-Za-z0-9_-]/;

/** How a table came to exist decides what may still be added to it. */
type Origin = "implicit" | "header" | "dotted" | "inline";

class Parser {
  private pos = 0;
  private line = 1;
  private readonly origins = new WeakMap<TomlTable, Origin>();
  private readonly tableArrays = new WeakSet<TomlValue[]>();
  private readonly tableLines = new WeakMap<TomlTable, number>();
  private readonly keyLines = new WeakMap<TomlTable, Map<string, number>>();
  readonly root: TomlTable = {};

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {
    this.origins.set(this.root, "header");
  }

  fail(message: string, line = this.line): never {
    throw new ExtctlError("config", `${this.file}:${line}: ${message}`, {
      hint: "fix the file; extctl reads the TOML subset registries.conf uses (tables, strings, booleans, integers, arrays)",
    });
  }

  private peek(offset = 0): string {
    return this.text[this.pos + offset] ?? "";
  }

  private skipSpaces(): void {
    while (this.peek() === " " || this.peek() === "\t") this.pos++;
  }

  private skipComment(): void {
    if (this.peek() !== "#") return;
    while (this.pos < this.text.length && this.peek() !== "\n" && this.peek() !== "\r") {
      const c = this.text.charCodeAt(this.pos);
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) this.fail("a control character in a comment");
      this.pos++;
    }
  }

  /** At a newline (LF or CRLF): consumes it and returns true. */
  private newline(): boolean {
    if (this.peek() === "\n") {
      this.pos++;
      this.line++;
      return true;
    }
    if (this.peek() === "\r") {
      if (this.peek(1) !== "\n") this.fail("a carriage return without a line feed");
      this.pos += 2;
      this.line++;
      return true;
    }
    return false;
  }

  /** Spaces, comments and newlines, as allowed inside an array. */
  private skipBlank(): void {
    for (;;) {
      this.skipSpaces();
      this.skipComment();
      if (!this.newline()) return;
    }
  }

  private endOfLine(after: string): void {
    this.skipSpaces();
    this.skipComment();
    if (this.pos >= this.text.length || this.newline()) return;
    this.fail(`unexpected ${JSON.stringify(this.peek())} after ${after}`);
  }

  parse(): TomlDocument {
    let current = this.root;
    while (this.pos < this.text.length) {
      this.skipSpaces();
      this.skipComment();
      if (this.newline() || this.pos >= this.text.length) continue;
      if (this.peek() === "[") {
        const array = this.peek(1) === "[";
        this.pos += array ? 2 : 1;
        this.skipSpaces();
        const path = this.keyPath();
        this.skipSpaces();
        const close = array ? "]]" : "]";
        if (this.text.slice(this.pos, this.pos + close.length) !== close) {
          this.fail(`expected ${close} to close the table header`);
        }
        this.pos += close.length;
        current = array ? this.openArrayTable(path) : this.openTable(path);
        this.endOfLine("the table header");
        continue;
      }
      this.keyValue(current);
      this.endOfLine("the value");
    }
    const tableLines = this.tableLines;
    const keyLines = this.keyLines;
    return {
      root: this.root,
      lineOf: (t) => tableLines.get(t),
      keyLine: (t, k) => keyLines.get(t)?.get(k),
    };
  }

  private keyPath(): string[] {
    const parts = [this.key()];
    for (;;) {
      this.skipSpaces();
      if (this.peek() !== ".") return parts;
      this.pos++;
      this.skipSpaces();
      parts.push(this.key());
    }
  }

  private key(): string {
    const c = this.peek();
    if (c === '"') return this.basicString();
    if (c === "'") return this.literalString();
    const start = this.pos;
    while (BARE_KEY.test(this.peek())) this.pos++;
    if (this.pos === start) {
      this.fail(c === "" ? "a key is missing" : `a key cannot start with ${JSON.stringify(c)}`);
    }
    return this.text.slice(start, this.pos);
  }

  private newTable(origin: Origin): TomlTable {
    const t: TomlTable = {};
    this.origins.set(t, origin);
    this.tableLines.set(t, this.line);
    return t;
  }

  private setKey(table: TomlTable, key: string, value: TomlValue): void {
    if (Object.prototype.hasOwnProperty.call(table, key)) {
      const first = this.keyLines.get(table)?.get(key);
      this.fail(`${key} is defined twice${first !== undefined ? ` (first on line ${first})` : ""}`);
    }
    Object.defineProperty(table, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
    let lines = this.keyLines.get(table);
    if (!lines) this.keyLines.set(table, (lines = new Map<string, number>()));
    lines.set(key, this.line);
  }

  private own(table: TomlTable, key: string): TomlValue | undefined {
    return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
  }

  /** Walks the leading parts of a header path, creating implicit tables on the way. */
  private descend(path: readonly string[], dotted: boolean, from = this.root): TomlTable {
    let table = from;
    for (const part of path) {
      const next = this.own(table, part);
      if (next === undefined) {
        const created = this.newTable(dotted ? "dotted" : "implicit");
        this.setKey(table, part, created);
        table = created;
      } else if (Array.isArray(next)) {
        if (!this.tableArrays.has(next) || dotted) this.fail(`${part} is an array, not a table`);
        table = next[next.length - 1] as TomlTable;
      } else if (typeof next === "object") {
        const origin = this.origins.get(next);
        if (origin === "inline") this.fail(`${part} is an inline table, which cannot be extended`);
        if (dotted && origin === "header") this.fail(`${part} is a table defined by a header`);
        table = next;
      } else {
        this.fail(`${part} is a value, not a table`);
      }
    }
    return table;
  }

  private openTable(path: readonly string[]): TomlTable {
    const parent = this.descend(path.slice(0, -1), false);
    const last = path[path.length - 1] as string;
    const existing = this.own(parent, last);
    if (existing === undefined) {
      const t = this.newTable("header");
      this.setKey(parent, last, t);
      return t;
    }
    if (typeof existing !== "object" || Array.isArray(existing)) {
      this.fail(`[${path.join(".")}] names ${Array.isArray(existing) ? "an array" : "a value"}`);
    }
    const origin = this.origins.get(existing);
    if (origin !== "implicit") {
      const first = this.tableLines.get(existing);
      this.fail(
        `the table [${path.join(".")}] is defined twice${first !== undefined ? ` (first on line ${first})` : ""}`,
      );
    }
    this.origins.set(existing, "header");
    this.tableLines.set(existing, this.line);
    return existing;
  }

  private openArrayTable(path: readonly string[]): TomlTable {
    const parent = this.descend(path.slice(0, -1), false);
    const last = path[path.length - 1] as string;
    const existing = this.own(parent, last);
    const t = this.newTable("header");
    if (existing === undefined) {
      const array: TomlValue[] = [t];
      this.tableArrays.add(array);
      this.setKey(parent, last, array);
    } else if (Array.isArray(existing) && this.tableArrays.has(existing)) {
      existing.push(t);
    } else {
      this.fail(`[[${path.join(".")}]] names something that is not an array of tables`);
    }
    return t;
  }

  private keyValue(table: TomlTable): void {
    const path = this.keyPath();
    this.skipSpaces();
    if (this.peek() !== "=") this.fail(`expected = after the key ${path.join(".")}`);
    this.pos++;
    this.skipSpaces();
    const target = this.descend(path.slice(0, -1), true, table);
    const value = this.value();
    this.setKey(target, path[path.length - 1] as string, value);
  }

  private value(): TomlValue {
    const c = this.peek();
    if (c === '"') {
      if (this.text.startsWith('"""', this.pos)) this.fail("multi-line strings are not supported");
      return this.basicString();
    }
    if (c === "'") {
      if (this.text.startsWith("'''", this.pos)) this.fail("multi-line strings are not supported");
      return this.literalString();
    }
    if (c === "[") return this.array();
    if (c === "{") return this.inlineTable();
    const m = /^[A-Za-z0-9_+\-.:]+/.exec(this.text.slice(this.pos, this.pos + 128));
    const word = m?.[0] ?? "";
    if (word === "")
      this.fail(c === "" || c === "\n" ? "a value is missing" : `unexpected ${JSON.stringify(c)}`);
    this.pos += word.length;
    if (word === "true") return true;
    if (word === "false") return false;
    if (/^[+-]?(?:0|[1-9](?:_?[0-9])*)$/.test(word)) {
      const n = Number(word.replace(/_/g, ""));
      if (!Number.isSafeInteger(n)) this.fail(`the integer ${word} is too large`);
      return n;
    }
    if (/^[+-]?(?:0[xob]|[0-9]|inf|nan)/.test(word)) {
      this.fail(`${word}: only decimal integers are supported (no floats, dates or other bases)`);
    }
    this.fail(`${word} is not a value; strings need quotes`);
  }

  private basicString(): string {
    const line = this.line;
    this.pos++;
    let out = "";
    for (;;) {
      const c = this.peek();
      if (c === "") this.fail("a string is not closed", line);
      if (c === '"') {
        this.pos++;
        return out;
      }
      if (c === "\\") {
        out += this.escape();
        continue;
      }
      const code = c.charCodeAt(0);
      if ((code < 0x20 && code !== 0x09) || code === 0x7f) {
        this.fail(
          c === "\n" || c === "\r" ? "a string is not closed" : "a control character in a string",
        );
      }
      out += c;
      this.pos++;
    }
  }

  private escape(): string {
    const c = this.peek(1);
    this.pos += 2;
    const simple: Record<string, string> = {
      b: "\b",
      t: "\t",
      n: "\n",
      f: "\f",
      r: "\r",
      '"': '"',
      "\\": "\\",
    };
    const plain = simple[c];
    if (plain !== undefined) return plain;
    if (c === "u" || c === "U") {
      const digits = c === "u" ? 4 : 8;
      const hex = this.text.slice(this.pos, this.pos + digits);
      if (!new RegExp(`^[0-9A-Fa-f]{${digits}}$`).test(hex))
        this.fail(`\\${c} needs ${digits} hex digits`);
      const code = parseInt(hex, 16);
      if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
        this.fail(`\\${c}${hex} is not a Unicode scalar value`);
      }
      this.pos += digits;
      return String.fromCodePoint(code);
    }
    this.fail(`\\${c} is not a valid escape`);
  }

  private literalString(): string {
    const line = this.line;
    const start = ++this.pos;
    for (;;) {
      const c = this.peek();
      if (c === "" || c === "\n" || c === "\r") this.fail("a string is not closed", line);
      if (c === "'") {
        const s = this.text.slice(start, this.pos);
        this.pos++;
        return s;
      }
      const code = c.charCodeAt(0);
      if ((code < 0x20 && code !== 0x09) || code === 0x7f)
        this.fail("a control character in a string");
      this.pos++;
    }
  }

  private array(): TomlValue[] {
    const line = this.line;
    this.pos++;
    const out: TomlValue[] = [];
    for (;;) {
      this.skipBlank();
      if (this.peek() === "]") break;
      if (this.pos >= this.text.length) this.fail("an array is not closed", line);
      out.push(this.value());
      this.skipBlank();
      if (this.peek() === ",") {
        this.pos++;
        continue;
      }
      if (this.peek() !== "]") this.fail("expected , or ] in the array");
    }
    this.pos++;
    return out;
  }

  private inlineTable(): TomlTable {
    this.pos++;
    const t = this.newTable("inline");
    this.skipSpaces();
    if (this.peek() === "}") {
      this.pos++;
      return t;
    }
    for (;;) {
      this.skipSpaces();
      const path = this.keyPath();
      this.skipSpaces();
      if (this.peek() !== "=") this.fail(`expected = after the key ${path.join(".")}`);
      this.pos++;
      this.skipSpaces();
      const target = this.descend(path.slice(0, -1), true, t);
      this.setKey(target, path[path.length - 1] as string, this.value());
      this.skipSpaces();
      if (this.peek() === ",") {
        this.pos++;
        continue;
      }
      if (this.peek() === "}") {
        this.pos++;
        return t;
      }
      this.fail("expected , or } in the inline table (inline tables stay on one line)");
    }
  }
}

/** Parses `text` (the contents of `file`, named in errors). */
export function parseToml(text: string, file: string): TomlDocument {
  return new Parser(text.startsWith("\ufeff") ? text.slice(1) : text, file).parse();
}
