import assert from "node:assert/strict";
import { test } from "node:test";
import { ExtctlError } from "../../../src/util/errors.js";
import { parseToml } from "../../../src/util/toml.js";

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
  assert.deepEqual(doc.root, {
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
  assert.deepEqual(doc.root.dotted, { key: "v" });
  assert.deepEqual(doc.root.mirror, [
    { location: "m.local", insecure: true },
    { location: "n.local" },
  ]);
  assert.deepEqual(doc.root.empty, {});
  assert.deepEqual(doc.root.flags, [true, false]);
});

test("a key or table defined twice is an error naming both lines", () => {
  fails('a = "1"\na = "2"\n', /^\/etc\/x\.conf:2: a is defined twice \(first on line 1\)/);
  fails("[t]\n[t]\n", /^\/etc\/x\.conf:2: the table \[t\] is defined twice \(first on line 1\)/);
  fails("[[t]]\n[t]\n", /:2: \[t\] names an array/);
  fails("t = 1\n[[t]]\n", /:2: \[\[t\]\] names something that is not an array of tables/);
  fails("t = { a = 1 }\n[t.b]\n", /:2: t is an inline table, which cannot be extended/);
});

test("values outside the subset are refused with the line", () => {
  fails("\n\nx = 1.5\n", /^\/etc\/x\.conf:3: 1\.5: only decimal integers/);
  fails("x = 1979-05-27\n", /:1: .*only decimal integers/);
  fails('x = """a\nb"""\n', /:1: multi-line strings are not supported/);
  fails("x = bare\n", /:1: bare is not a value; strings need quotes/);
  fails('x = "open\n', /:1: a string is not closed/);
  fails("x = [1, 2\n", /:2: .*array is not closed|:2: expected , or \]/);
  fails('x = "a" y = 1\n', /:1: unexpected "y" after the value/);
  fails('x = "\\q"\n', /:1: \\q is not a valid escape/);
  fails("[t\n", /:1: expected \] to close the table header/);
  fails("= 1\n", /:1: a key cannot start with "="/);
  fails("x = 99999999999999999999\n", /too large/);
  fails("x =\n", /:1: a value is missing/);
});

test("keys cannot reach the prototype", () => {
  const doc = parseToml('__proto__ = "x"\n[constructor]\na = 1\n', "f");
  assert.equal(Object.getPrototypeOf(doc.root), Object.prototype);
  assert.equal(Object.prototype.hasOwnProperty.call(doc.root, "__proto__"), true);
  assert.deepEqual(doc.root.constructor, { a: 1 });
});
