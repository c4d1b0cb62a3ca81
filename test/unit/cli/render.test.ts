// The table renderer: aligned, escaped, and fine with hundreds of thousands of rows.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { outputWidth, renderTable, takeJsonMode } from "../../../src/cli/render.js";
import { fitLabel } from "../../../src/util/progress.js";

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

describe("tables that fit", () => {
  const rows = [
    { name: "tool.sysext.raw", reason: "x".repeat(190) },
    { name: "a-much-longer-image-name-1.2.3.sysext.raw", reason: "ok" },
  ];
  const columns = [
    { header: "NAME", value: (r: (typeof rows)[number]) => r.name },
    { header: "COMPATIBLE", value: (r: (typeof rows)[number]) => r.reason },
  ];

  test("at 60 columns every line fits and the widest cell ends in an ellipsis", () => {
    const out = renderTable(rows, columns, { width: 60 });
    for (const line of out.trimEnd().split("\n")) assert.ok(line.length <= 60, line);
    assert.match(out, /x…$/m);
    assert.match(
      out,
      /^a-much-longer-image-name-1\.2\.3\.sysext\.raw/m,
      "the narrower column stays whole",
    );
  });

  test("--full keeps every cell whole whatever the width", () => {
    const out = renderTable(rows, columns, { width: 60, full: true });
    assert.ok(out.includes("x".repeat(190)));
  });

  test("--no-legend drops the header line", () => {
    const out = renderTable(rows, columns, { width: 300, legend: false });
    assert.equal(out.split("\n")[0]?.startsWith("tool.sysext.raw"), true);
    assert.doesNotMatch(out, /NAME/);
  });

  test("a column keeps its header (or 8) while the table fits that way", () => {
    const out = renderTable(rows, columns, { width: 30 });
    const header = out.split("\n")[0] ?? "";
    assert.match(header, /^NAME\s+COMPATIBLE$/);
    for (const line of out.trimEnd().split("\n")) assert.ok(line.length <= 30, line);
  });

  test("past that, headers give way too, down to 4 columns each", () => {
    const out = renderTable(rows, columns, { width: 10 });
    const lines = out.trimEnd().split("\n");
    assert.equal(lines[0], "NAME  COM…");
    for (const line of lines) assert.ok(line.length <= 10, line);
    // Narrower than 4 a column is never cut: the line then overflows rather than say nothing.
    const tiny = renderTable(rows, columns, { width: 4 });
    assert.equal(tiny.split("\n")[0], "NAME  COM…");
  });

  test("COLUMNS sets the width when stdout is not a terminal", () => {
    assert.equal(outputWidth({ COLUMNS: "72" }), 72);
    assert.equal(outputWidth({ COLUMNS: "junk" }) > 0, true);
  });
});

describe("--json=MODE", () => {
  test("pretty and short become --json, off drops it, operands after -- are left alone", () => {
    assert.deepEqual(takeJsonMode(["node", "x", "list", "--json=pretty"]), [
      "node",
      "x",
      "list",
      "--json",
    ]);
    assert.deepEqual(takeJsonMode(["node", "x", "list", "--json=off"]), ["node", "x", "list"]);
    assert.deepEqual(takeJsonMode(["node", "x", "--", "--json=bad"]), [
      "node",
      "x",
      "--",
      "--json=bad",
    ]);
  });

  test("an unknown mode is a usage error naming the modes", () => {
    assert.throws(() => takeJsonMode(["node", "x", "--json=yaml"]), /pretty, short or off/);
  });
});

describe("progress lines", () => {
  test("the label is shortened before the numbers are", () => {
    const line = fitLabel(
      "downloading a-very-long-name.sysext.raw",
      " [#####] 10 MiB/20 MiB 5 MiB/s ETA 2s",
      60,
    );
    assert.ok(line.length <= 59, line);
    assert.match(line, /… \[#####\] 10 MiB\/20 MiB 5 MiB\/s ETA 2s$/);
  });
});
