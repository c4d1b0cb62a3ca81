// Printed values cannot carry terminal sequences or line breaks of their own.
import assert from "node:assert/strict";
import { test } from "node:test";
import { escapeControl, escapeControlKeepLines } from "../../../src/util/escape.js";

test("C0, C1, DEL, ESC, CR and LF are shown as escapes", () => {
  assert.equal(escapeControl("a\nb\rc\td"), "a\\nb\\rc\\td");
  assert.equal(escapeControl("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
  assert.equal(escapeControl("\x00\x07\x7f\x85\x9b"), "\\x00\\x07\\x7f\\x85\\x9b");
  assert.equal(escapeControl("rtl\u202eevil\u2028x"), "rtl\\u202eevil\\u2028x");
});

test("printable text, including non-ASCII, is left alone", () => {
  assert.equal(escapeControl("usr/bin/héllo ✓ [x] 100%"), "usr/bin/héllo ✓ [x] 100%");
});

test("the block form keeps the renderer's own line breaks only", () => {
  assert.equal(escapeControlKeepLines("one\ntwo\x1b]0;x\x07"), "one\ntwo\\x1b]0;x\\x07");
});
