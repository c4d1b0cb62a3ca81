// The table renderer: aligned, escaped, and fine with hundreds of thousands of rows.
import assert from "node:assert/strict";
import { test } from "node:test";
import { renderTable } from "../../../src/cli/render.js";

test("cells with control characters cannot inject rows or sequences", () => {
  const rows = [{ name: "good\nFAKE  row", label: "\x1b[2Jx" }];
  const out = renderTable(rows, [
    { header: "NAME", value: (r) => r.name },
    { header: "LABEL", value: (r) => r.label },
  ]);
  assert.equal(out.split("\n").length, 3, out);
  assert.ok(!out.includes("\x1b"));
  assert.match(out, /good\\nFAKE {2}row {2}\\x1b\[2Jx/);
});

test("300,000 rows render without overflowing the stack, widths from the widest cell", () => {
  const rows = Array.from({ length: 300_000 }, (_, i) => i);
  rows[123_456] = 10 ** 12;
  const out = renderTable(rows, [
    { header: "N", value: (n) => String(n), align: "right" },
    { header: "PATH", value: (n) => `usr/share/f${n}` },
  ]);
  const lines = out.trimEnd().split("\n");
  assert.equal(lines.length, 300_001);
  assert.equal(lines[1], `${"0".padStart(13)}  usr/share/f0`);
});
