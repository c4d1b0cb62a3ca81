// names.ts's one check for image names: printable names pass, controls and look-alikes do not.
import assert from "node:assert/strict";
import { test } from "node:test";
import { quoteName, unsafeNameReason } from "../../../../src/domain/store/names.js";

test("printable names pass, including spaces inside and non-ASCII letters", () => {
  for (const ok of [
    "tool.sysext.raw",
    "my tool-1.2.raw",
    "café.raw",
    "a+b@c.raw",
    "k3s-v1.29.0+k3s1.sysext.raw",
    "tool_1.2~rc1.raw",
    "a=b,c:d%e^f#g.raw",
  ])
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

test("shell-special characters are refused, and the reason names the character and what is allowed", () => {
  for (const ch of [
    "$",
    "`",
    "'",
    '"',
    ";",
    "&",
    "|",
    "<",
    ">",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "*",
    "?",
    "!",
    "€",
    "\u{1f600}",
  ]) {
    const reason = unsafeNameReason(`x${ch}y.raw`);
    assert.notEqual(reason, undefined, ch);
    assert.ok(reason?.includes(quoteName(ch)), `${ch}: ${reason}`);
    assert.match(reason ?? "", /letters, digits, spaces and \. _ \+ - ~ @/);
  }
  assert.match(unsafeNameReason("x$(touch${IFS}pwn).raw") ?? "", /"\$"/);
  assert.match(unsafeNameReason("~root.raw") ?? "", /starts with "~"/);
  assert.match(unsafeNameReason("#x.raw") ?? "", /starts with "#"/);
  assert.match(unsafeNameReason("a\\b.raw") ?? "", /backslash/);
});
