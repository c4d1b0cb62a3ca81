import assert from "node:assert/strict";
import { test } from "node:test";
import { hides, isWhiteout, whiteoutOf } from "../../../../src/domain/oci/whiteout.js";

test("a .wh.NAME entry removes NAME beside it", () => {
  assert.deepEqual(whiteoutOf(".wh.x.sysext.raw"), { kind: "remove", path: "x.sysext.raw" });
  assert.deepEqual(whiteoutOf("usr/bin/.wh.tool"), { kind: "remove", path: "usr/bin/tool" });
  assert.deepEqual(whiteoutOf("etc/.wh..wh.odd"), { kind: "remove", path: "etc/.wh.odd" });
  assert.equal(whiteoutOf("usr/bin/tool"), undefined);
  assert.equal(whiteoutOf("usr/.wh/tool"), undefined);
  assert.equal(isWhiteout("usr/.wh.tool"), true);
  assert.equal(isWhiteout("usr/wh.tool"), false);
});

test("the opaque marker empties its own directory, or the whole tree at the top", () => {
  assert.deepEqual(whiteoutOf("etc/app/.wh..wh..opq"), { kind: "opaque", dir: "etc/app" });
  assert.deepEqual(whiteoutOf(".wh..wh..opq"), { kind: "opaque", dir: "" });
  const opaque = whiteoutOf("etc/app/.wh..wh..opq")!;
  assert.equal(hides(opaque, "etc/app"), false, "the directory itself stays");
  assert.equal(hides(opaque, "etc/app/a.conf"), true);
  assert.equal(hides(opaque, "etc/app/sub/b.conf"), true);
  assert.equal(hides(opaque, "etc/apple"), false);
  const top = whiteoutOf(".wh..wh..opq")!;
  assert.equal(hides(top, "x.raw"), true);
  assert.equal(hides(top, "usr/bin"), true);
});

test("a removed path takes what is below it, and nothing that only shares a prefix", () => {
  const w = whiteoutOf("usr/.wh.lib")!;
  assert.equal(hides(w, "usr/lib"), true);
  assert.equal(hides(w, "usr/lib/libx.so"), true);
  assert.equal(hides(w, "usr/lib64"), false);
  assert.equal(hides(w, "usr"), false);
});

test("a bare .wh. is a whiteout that removes nothing", () => {
  for (const p of [".wh.", "usr/.wh."]) {
    const w = whiteoutOf(p)!;
    assert.ok(isWhiteout(p));
    assert.equal(hides(w, ""), false);
    assert.equal(hides(w, "usr"), false);
    assert.equal(hides(w, "x.raw"), false);
  }
});
