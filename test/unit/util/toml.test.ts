import assert from "node:assert/strict";
import { test } from "node:test";
import { ExtctlError } from "../../../src/util/errors.js";
import { isTomlTable, parseToml, type TomlTable } from "../../../src/util/toml.js";

/** smol-toml's tables have no prototype; compare them as plain objects. */
function plain(v: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(v)) as Record<string, unknown>;
}

function fails(text: string, pattern: RegExp): void {
  assert.throws(
    () => parseToml(text, "/etc/x.conf"),
    (e: unknown) => e instanceof ExtctlError && e.code === "config" && pattern.test(e.message),
  );
}

test("tables, arrays of tables and nested arrays of tables build one tree", () => {
  const doc = parseToml(
    [
      "# registries",
      "unqualified-search-registries = [\"a.example\", 'b.example',]",
      "",
      "[[registry]]",
      'prefix = "example.com/foo"  # the logical name',
      "insecure = false",
      "[[registry.mirror]]",
      'location = "m0.local/foo"',
      "[[registry.mirror]]",
      "location = 'm1.local/foo'",
      "insecure = true",
      "[[registry]]",
      'location = "other.example"',
      "[aliases]",
      '  "ubi8/ubi" = "registry.access.redhat.com/ubi8/ubi"',
      "[a.b]",
      "n = -1_000",
      "",
    ].join("\r\n"),
    "/etc/x.conf",
  );
  assert.deepEqual(plain(doc.root), {
    "unqualified-search-registries": ["a.example", "b.example"],
    registry: [
      {
        prefix: "example.com/foo",
        insecure: false,
        mirror: [{ location: "m0.local/foo" }, { location: "m1.local/foo", insecure: true }],
      },
      { location: "other.example" },
    ],
    aliases: { "ubi8/ubi": "registry.access.redhat.com/ubi8/ubi" },
    a: { b: { n: -1000 } },
  });
  const registries = doc.root.registry as Record<string, unknown>[];
  assert.equal(doc.lineOf(registries[1] as never), 12);
  assert.equal(doc.keyLine(registries[0] as never, "insecure"), 6);
});

test("strings: basic escapes, literal strings, unicode; inline tables and multi-line arrays", () => {
  const doc = parseToml(
    [
      's = "tab\\there \\"q\\" \\u00e9 \\U0001F600 back\\\\slash"',
      "lit = 'C:\\no\\escapes'",
      'dotted.key = "v"',
      "mirror = [",
      '  { location = "m.local", insecure = true }, # first',
      '  { location = "n.local" },',
      "]",
      "empty = {}",
      "flags = [true, false]",
    ].join("\n"),
    "f",
  );
  assert.equal(doc.root.s, 'tab\there "q" é 😀 back\\slash');
  assert.equal(doc.root.lit, "C:\\no\\escapes");
  assert.deepEqual(plain(doc.root.dotted), { key: "v" });
  assert.deepEqual(plain({ m: doc.root.mirror }).m, [
    { location: "m.local", insecure: true },
    { location: "n.local" },
  ]);
  assert.deepEqual(plain(doc.root.empty), {});
  assert.deepEqual(doc.root.flags, [true, false]);
});

test("a key or table defined twice is an error naming the line of the second", () => {
  fails('a = "1"\na = "2"\n', /^\/etc\/x\.conf:2: /);
  fails("[t]\n\n[t]\n", /^\/etc\/x\.conf:3: /);
  fails("[[t]]\n[t]\n", /^\/etc\/x\.conf:2: /);
  fails("t = 1\n[[t]]\n", /^\/etc\/x\.conf:2: /);
  fails("t = { a = 1 }\n[t.b]\n", /^\/etc\/x\.conf:2: /);
});

test("bad TOML is refused naming file:line, the message without smol-toml's code block", () => {
  fails("\n\nx = bare\n", /^\/etc\/x\.conf:3: [^\n]+$/);
  fails('x = "open\n', /^\/etc\/x\.conf:1: a string is not closed before the end of the line$/);
  fails('x = "open\r\n', /^\/etc\/x\.conf:1: a string is not closed/);
  fails('x = "a\u0001"\n', /^\/etc\/x\.conf:1: control characters are not allowed in strings$/);
  fails("a = 1\nx = [1, 2\n", /^\/etc\/x\.conf:3: /);
  fails('x = "a" y = 1\n', /^\/etc\/x\.conf:1: /);
  fails('\n\n\n\nx = "\\q"\n', /^\/etc\/x\.conf:5: /);
  fails("[t\n", /^\/etc\/x\.conf:1: /);
  fails("= 1\n", /^\/etc\/x\.conf:1: /);
  fails("x =\n", /^\/etc\/x\.conf:1: /);
  fails("x = 99999999999999999999\n", /^\/etc\/x\.conf:1: /);
  assert.throws(
    () => parseToml("x = bare\n", "/etc/x.conf"),
    (e: unknown) =>
      e instanceof ExtctlError && e.hint !== undefined && !e.message.includes("Invalid TOML"),
  );
});

test("values smol-toml reads beyond the old subset stay values, never tables", () => {
  const doc = parseToml('x = 1.5\nd = 1979-05-27\ns = """a\nb"""\n[t]\nk = 1\n', "f");
  assert.equal(doc.root.x, 1.5);
  assert.equal(isTomlTable(doc.root.d), false);
  assert.equal(doc.root.s, "a\nb");
  assert.equal(doc.keyLine(doc.root.t as never, "k"), 6);
});

test("lines: headers, dotted keys, quoted keys, and the braces of inline tables", () => {
  const doc = parseToml(
    [
      'note = """',
      "[[registry]] is not a header inside a string",
      '"""',
      "[[registry]]",
      'prefix = "a.example"',
      "mirror = [",
      '  { location = "m0.local" },',
      "",
      '  { location = "m1.local", insecure = true },',
      "]",
      "[[registry]]",
      '"quoted.key" = 1',
      "d.e = 2 # a comment with [ and {",
      "[[registry.mirror]]",
      "location = 'n.local'",
    ].join("\n"),
    "f",
  );
  const [r0, r1] = doc.root.registry as TomlTable[];
  assert.ok(r0 !== undefined && r1 !== undefined);
  assert.equal(doc.lineOf(r0), 4);
  assert.equal(doc.keyLine(r0, "prefix"), 5);
  const [m0, m1] = r0.mirror as TomlTable[];
  assert.ok(m0 !== undefined && m1 !== undefined);
  assert.equal(doc.lineOf(m0), 7);
  assert.equal(doc.keyLine(m1, "insecure"), 9);
  assert.equal(doc.lineOf(r1), 11);
  assert.equal(doc.keyLine(r1, "quoted.key"), 12);
  assert.equal(doc.lineOf(r1.d as TomlTable), 13);
  assert.equal(doc.keyLine(r1.d as TomlTable, "e"), 13);
  const [n] = r1.mirror as TomlTable[];
  assert.ok(n !== undefined);
  assert.equal(doc.lineOf(n), 14);
  assert.equal(doc.keyLine(n, "location"), 15);
});

test("keys cannot reach the prototype", () => {
  const doc = parseToml('__proto__ = "x"\n[constructor]\na = 1\n', "f");
  assert.equal(Object.prototype.hasOwnProperty.call(doc.root, "__proto__"), true);
  assert.equal(({} as Record<string, unknown>).a, undefined);
  assert.equal(plain(doc.root.constructor).a, 1);
});
