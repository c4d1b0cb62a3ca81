// names.ts's one check for image names: printable names pass, controls and look-alikes do not.
import assert from "node:assert/strict";
import { test } from "node:test";
import { quoteName, unsafeNameReason } from "../../../../src/domain/store/names.js";

test("printable names pass, including spaces inside and non-ASCII letters", () => {
  for (const ok of ["tool.sysext.raw", "my tool-1.2.raw", "café.raw", "a+b@c.raw"])
    assert.equal(unsafeNameReason(ok), undefined, ok);
});

test("C0, CR, LF, ESC, DEL, C1, bidi overrides, separators and hidden names are refused", () => {
  for (const bad of [
    "a\nb.raw",
    "a\rb.raw",
    "a\x1b[2Jb.raw",
    "a\x7fb.raw",
    "a\u0085b.raw",
    "a\u009bb.raw",
    "a\u202eb.raw",
    "a\u200bb.raw",
    "a\u2028b.raw",
    "a\u00a0b.raw",
    "a/b.raw",
    "a\\b.raw",
    ".hidden.raw",
    "-rf.raw",
    " lead.raw",
    "",
    "x".repeat(256),
  ])
    assert.notEqual(unsafeNameReason(bad), undefined, JSON.stringify(bad));
});

test("quoteName shows controls as escapes, never raw", () => {
  assert.equal(quoteName('a\n\x1b"b'), '"a\\u{a}\\u{1b}\\u{22}b"');
});
