// os-release parsing with systemd's env-file rules.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBoolean, parseOsRelease } from "../../../../src/domain/image/os-release.js";

test("plain, single- and double-quoted values", () => {
  assert.deepEqual(parseOsRelease("ID=debian\nVERSION_ID=\"12\"\nNAME='Debian GNU/Linux'\n"), {
    ID: "debian",
    VERSION_ID: "12",
    NAME: "Debian GNU/Linux",
  });
});

test("comments, blank lines, surrounding whitespace and a missing final newline", () => {
  assert.deepEqual(parseOsRelease("# a comment\n\n; another\n  ID = fedora  \nVERSION_ID=40"), {
    ID: "fedora",
    VERSION_ID: "40",
  });
});

test("escapes: double quotes keep unknown escapes, single quotes keep everything", () => {
  const f = parseOsRelease('A="a \\"q\\" \\$x \\n"\nB=\'no \\" escapes\'\nC=un\\ quoted\\\\\n');
  assert.equal(f.A, 'a "q" $x \\n');
  assert.equal(f.B, 'no \\" escapes');
  assert.equal(f.C, "un quoted\\");
});

test("backslash-newline continues a value; quotes can be concatenated", () => {
  const f = parseOsRelease('A="one \\\ntwo"\nB=x\\\ny\nC="ab"\'cd\'\n');
  assert.equal(f.A, "one two");
  assert.equal(f.B, "xy");
  assert.equal(f.C, "abcd");
});

test("later assignments win and invalid keys are dropped", () => {
  assert.deepEqual(parseOsRelease("ID=a\nID=b\n1BAD=x\nno-dash=y\nLINE_WITHOUT_EQUALS\n"), {
    ID: "b",
  });
});

test("empty value and quoted whitespace are kept", () => {
  assert.deepEqual(parseOsRelease('EMPTY=\nSPACE="  "\n'), { EMPTY: "", SPACE: "  " });
});

test("booleans are systemd's spellings", () => {
  for (const t of ["1", "yes", "y", "true", "t", "on", "TRUE"]) assert.equal(parseBoolean(t), true);
  for (const f of ["0", "no", "n", "false", "f", "off"]) assert.equal(parseBoolean(f), false);
  assert.equal(parseBoolean("maybe"), undefined);
});
