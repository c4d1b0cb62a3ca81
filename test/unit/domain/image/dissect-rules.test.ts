// systemd's label ordering (strverscmp_improved) and the partition choices dissect makes,
// on GPT tables built in memory by extctl's own GPT writer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { strverscmpImproved } from "../../../../src/domain/image/strverscmp.js";
import {
  partitionTypeGuid,
  partitionTypeOf,
  secondaryArchitecture,
  ARCHITECTURES,
} from "../../../../src/domain/image/partition-types.js";

test("strverscmp_improved orders labels as systemd does", () => {
  const newer = (a: string, b: string) => assert.ok(strverscmpImproved(a, b) > 0, `${a} > ${b}`);
  newer("a", "A"); // byte-wise letters: systemd-dissect 252 picks "a" over "A"
  newer("1.10", "1.9");
  newer("v2", "v2~rc1");
  newer("123", "0123~1");
  newer("1.2.3", "1.2");
  newer("1.2-1", "1.2"); // more segments is newer, except after "~"
  newer("abc", "ab");
  newer("1", "");
  assert.equal(strverscmpImproved("01", "1"), 0);
  assert.equal(strverscmpImproved("x", "x"), 0);
});

test("every Discoverable Partitions architecture has its six types and x86-64/arm64 a secondary", () => {
  assert.ok(ARCHITECTURES.length >= 19);
  for (const a of ["x86", "arm", "riscv32", "loongarch64", "ppc64-le", "s390x"] as const)
    assert.equal(partitionTypeOf(partitionTypeGuid("root", a))?.architecture, a);
  assert.equal(partitionTypeGuid("root", "x86"), "44479540-f297-41b2-9af7-d131d5f0458a");
  assert.equal(secondaryArchitecture("x86-64"), "x86");
  assert.equal(secondaryArchitecture("arm64"), "arm");
  assert.equal(secondaryArchitecture("riscv64"), undefined);
});
