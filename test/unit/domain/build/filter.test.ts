import assert from "node:assert/strict";
import { test } from "node:test";
import { filterTree } from "../../../../src/domain/build/filter.js";
import { FileTree, type BuildEntry } from "../../../../src/domain/build/tree.js";

function tree(entries: Partial<BuildEntry>[]): FileTree {
  const t = new FileTree();
  for (const e of entries) {
    t.set({
      path: "",
      type: "file",
      mode: 0o644,
      uid: 1000,
      gid: 1000,
      mtime: 2_000_000_000,
      size: 1,
      content: { kind: "inline", data: Buffer.from("x") },
      ...e,
    });
  }
  return t;
}

const base = [
  { path: "usr", type: "dir" as const },
  { path: "usr/bin", type: "dir" as const },
  { path: "usr/bin/a", mode: 0o4755 },
];

test("a sysext keeps usr/ and summarises what it drops in one line", () => {
  const r = filterTree(
    tree([
      ...base,
      { path: "etc", type: "dir" },
      { path: "etc/x" },
      { path: "var/y" },
      { path: "opt/z" },
    ]),
    { kind: "sysext" },
  );
  assert.deepEqual(
    [...r.tree.sorted()].map((e) => e.path),
    ["usr", "usr/bin", "usr/bin/a"],
  );
  assert.equal(r.summary, "dropped 4 entries outside usr/: etc (2), opt (1), var (1)");
});

test("--with-opt keeps opt/; a confext keeps etc/ only", () => {
  const t = tree([...base, { path: "opt/z" }, { path: "etc/c" }]);
  assert.ok(filterTree(t, { kind: "sysext", withOpt: true }).tree.has("opt/z"));
  assert.deepEqual(
    [...filterTree(t, { kind: "confext" }).tree.sorted()].map((e) => e.path),
    ["etc/c"],
  );
});

test("modes are kept, owners become root unless kept, times are clamped", () => {
  const t = tree(base);
  const a = filterTree(t, { kind: "sysext", clampMtime: 1_700_000_000 }).tree.get("usr/bin/a")!;
  assert.deepEqual([a.mode, a.uid, a.gid, a.mtime], [0o4755, 0, 0, 1_700_000_000]);
  const b = filterTree(t, { kind: "sysext", keepOwners: true }).tree.get("usr/bin/a")!;
  assert.deepEqual([b.uid, b.gid, b.mtime], [1000, 1000, 2_000_000_000]);
});

test("device nodes, fifos, escaping symlinks and os-release are refused; absolute symlinks are fine", () => {
  assert.throws(
    () => filterTree(tree([...base, { path: "usr/null", type: "char" }]), { kind: "sysext" }),
    /device node usr\/null/,
  );
  assert.throws(
    () => filterTree(tree([...base, { path: "usr/p", type: "fifo" }]), { kind: "sysext" }),
    /fifo usr\/p/,
  );
  assert.throws(
    () =>
      filterTree(
        tree([...base, { path: "usr/bin/s", type: "symlink", linkTarget: "../../../x" }]),
        { kind: "sysext" },
      ),
    /points outside the image/,
  );
  assert.ok(
    filterTree(tree([...base, { path: "usr/bin/s", type: "symlink", linkTarget: "/etc/x" }]), {
      kind: "sysext",
    }).tree.has("usr/bin/s"),
  );
  assert.ok(
    filterTree(tree([...base, { path: "usr/bin/s", type: "symlink", linkTarget: "../lib/x" }]), {
      kind: "sysext",
    }).tree.has("usr/bin/s"),
  );
  assert.throws(
    () => filterTree(tree([...base, { path: "usr/lib/os-release" }]), { kind: "sysext" }),
    /usr\/lib\/os-release/,
  );
  // Special files outside what is kept do not matter.
  assert.ok(filterTree(tree([...base, { path: "dev/null", type: "char" }]), { kind: "sysext" }));
});

test("an empty result is an error", () => {
  assert.throws(
    () => filterTree(tree([{ path: "usr", type: "dir" }, { path: "etc/x" }]), { kind: "sysext" }),
    /nothing to build/,
  );
});

test("a hardlink whose other name is dropped becomes a plain file", () => {
  const t = tree([
    ...base,
    { path: "etc/orig" },
    { path: "usr/bin/link", type: "hardlink", hardlinkTarget: "etc/orig" },
  ]);
  const e = filterTree(t, { kind: "sysext" }).tree.get("usr/bin/link")!;
  assert.equal(e.type, "file");
  assert.equal(e.hardlinkTarget, undefined);
});
