import assert from "node:assert/strict";
import { test } from "node:test";
import { applyLayers, diffOverBase } from "../../../../src/domain/build/layers.js";
import type { BuildEntry } from "../../../../src/domain/build/tree.js";

let ordinal = 0;
function file(p: string, layer: number, extra: Partial<BuildEntry> = {}): BuildEntry {
  return {
    path: p,
    type: "file",
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1,
    size: 1,
    content: { kind: "layer", layer, ordinal: ordinal++ },
    ...extra,
  };
}
function dir(p: string): BuildEntry {
  return { path: p, type: "dir", mode: 0o755, uid: 0, gid: 0, mtime: 1, size: 0 };
}
const marker = (p: string) => file(p, 99, { size: 0 });
const paths = (entries: Iterable<BuildEntry>) => [...entries].map((e) => e.path).sort();

test("a whiteout deletes the path (and a directory's contents) from lower layers", () => {
  const { tree, stats } = applyLayers([
    { describe: "l1", entries: [dir("usr"), file("usr/a", 0), dir("usr/d"), file("usr/d/x", 0)] },
    { describe: "l2", entries: [marker("usr/.wh.a"), marker("usr/.wh.d")] },
  ]);
  assert.deepEqual(paths(tree.entries()), ["usr"]);
  assert.equal(stats.deleted, 2);
});

test("an opaque directory hides lower contents but keeps what its own layer adds, in any order", () => {
  const { tree } = applyLayers([
    { describe: "l1", entries: [dir("usr"), dir("usr/o"), file("usr/o/old", 0)] },
    { describe: "l2", entries: [file("usr/o/new", 1), marker("usr/o/.wh..wh..opq")] },
  ]);
  assert.deepEqual(paths(tree.entries()), ["usr", "usr/o", "usr/o/new"]);
});

test("an opaque marker at the top empties the tree below; the counts say what went", () => {
  const { tree, stats } = applyLayers([
    { describe: "l1", entries: [dir("etc"), file("etc/a", 0), file("b", 0)] },
    { describe: "l2", entries: [marker(".wh..wh..opq"), file("c", 1)] },
  ]);
  assert.deepEqual(paths(tree.entries()), ["c"]);
  assert.deepEqual(stats, { deleted: 0, opaque: 3 });
});

test("a bare .wh. removes nothing, at the top or in a directory", () => {
  const { tree, stats } = applyLayers([
    { describe: "l1", entries: [dir("usr"), file("usr/a", 0), file("b", 0)] },
    { describe: "l2", entries: [marker(".wh."), marker("usr/.wh.")] },
  ]);
  assert.deepEqual(paths(tree.entries()), ["b", "usr", "usr/a"]);
  assert.deepEqual(stats, { deleted: 0, opaque: 0 });
});

test("a whiteout never deletes its own layer's entry; a later layer re-adds", () => {
  const { tree } = applyLayers([
    { describe: "l1", entries: [file("usr/a", 0)] },
    { describe: "l2", entries: [file("usr/a", 1, { size: 5 }), marker("usr/.wh.a")] },
  ]);
  assert.equal(tree.get("usr/a")?.size, 5);
  assert.equal(tree.get("usr")?.type, "dir", "missing parents are made");
});

test("a file replacing a directory drops the directory's contents", () => {
  const { tree } = applyLayers([
    { describe: "l1", entries: [dir("usr"), dir("usr/x"), file("usr/x/y", 0)] },
    { describe: "l2", entries: [file("usr/x", 1)] },
  ]);
  assert.deepEqual(paths(tree.entries()), ["usr", "usr/x"]);
});

test("hardlinks share their target's bytes, even across layers", () => {
  const target = file("usr/a", 0);
  const { tree } = applyLayers([
    { describe: "l1", entries: [target] },
    {
      describe: "l2",
      entries: [{ ...dir("usr/b"), path: "usr/b", type: "hardlink", hardlinkTarget: "usr/a" }],
    },
  ]);
  const b = tree.get("usr/b")!;
  assert.equal(b.type, "hardlink");
  assert.equal(b.hardlinkTarget, "usr/a");
  assert.equal(b.content, target.content);
});

test("a hardlink to nothing and an entry under a symlinked parent are refused", () => {
  assert.throws(
    () =>
      applyLayers([
        {
          describe: "l1",
          entries: [{ ...dir("usr/b"), type: "hardlink", hardlinkTarget: "usr/none" }],
        },
      ]),
    /hardlink usr\/b to usr\/none/,
  );
  assert.throws(
    () =>
      applyLayers([
        {
          describe: "l1",
          entries: [{ ...dir("usr"), type: "symlink", linkTarget: "/etc" }, file("usr/passwd", 0)],
        },
      ]),
    /under usr, which is a symlink/,
  );
});

test("diffOverBase keeps new and changed entries and their parents, not shared ones", () => {
  const shared = [dir("usr"), dir("usr/lib"), file("usr/lib/same", 0), file("usr/lib/changed", 0)];
  const base = applyLayers([{ describe: "b", entries: shared }]).tree;
  const image = applyLayers([
    { describe: "l1", entries: shared },
    { describe: "l2", entries: [file("usr/lib/changed", 1), dir("usr/new"), file("usr/new/f", 1)] },
  ]).tree;
  assert.deepEqual(paths(diffOverBase(image, base, 1).entries()), [
    "usr",
    "usr/lib",
    "usr/lib/changed",
    "usr/new",
    "usr/new/f",
  ]);
});
