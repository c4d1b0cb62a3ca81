import assert from "node:assert/strict";
import { test } from "node:test";
import { filterTree } from "../../../../src/domain/build/filter.js";
import {
  carriedContent,
  checkIncludePaths,
  includeSubtrees,
} from "../../../../src/domain/build/include.js";
import { FileTree, type BuildEntry } from "../../../../src/domain/build/tree.js";
import { ExtctlError } from "../../../../src/util/errors.js";

function tree(entries: Partial<BuildEntry>[]): FileTree {
  const t = new FileTree();
  for (const e of entries) {
    const type = e.type ?? "file";
    t.set({
      path: "",
      type,
      mode: type === "dir" ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      mtime: 1_700_000_000,
      size: type === "file" ? 10 : 0,
      ...(type === "file" ? { content: { kind: "inline", data: Buffer.alloc(10) } } : {}),
      ...e,
    });
  }
  return t;
}

/** An OS image in miniature: merged /usr, os-release, firmware for two vendors. */
const os = () =>
  tree([
    { path: "bin", type: "symlink", linkTarget: "usr/bin" },
    { path: "lib", type: "symlink", linkTarget: "usr/lib" },
    { path: "etc", type: "dir" },
    { path: "etc/hostname" },
    { path: "usr", type: "dir" },
    { path: "usr/bin", type: "dir" },
    { path: "usr/bin/sh", size: 100 },
    { path: "usr/lib", type: "dir", mode: 0o750 },
    { path: "usr/lib/os-release" },
    { path: "usr/lib/firmware", type: "dir" },
    { path: "usr/lib/firmware/nvidia", type: "dir" },
    { path: "usr/lib/firmware/nvidia/gsp.bin", size: 3000 },
    { path: "usr/lib/firmware/nvidia/tu102", type: "dir" },
    { path: "usr/lib/firmware/nvidia/tu102/acr.bin", size: 200 },
    {
      path: "usr/lib/firmware/nvidia/tu102/acr-link",
      type: "hardlink",
      hardlinkTarget: "usr/lib/firmware/nvidia/tu102/acr.bin",
    },
    { path: "usr/lib/firmware/nvidia-like", size: 7 },
    { path: "usr/lib/firmware/amdgpu", type: "dir" },
    { path: "usr/lib/firmware/amdgpu/a.bin", size: 50 },
    { path: "usr/share/doc/nvidia", size: 5 },
  ]);

const paths = (t: FileTree) => t.sorted().map((e) => e.path);

test("--include keeps the subtree and its parents, nothing beside it (not even a name sharing its prefix)", () => {
  const kept = includeSubtrees(os(), ["usr/lib/firmware/nvidia"]);
  assert.deepEqual(paths(kept), [
    "usr",
    "usr/lib",
    "usr/lib/firmware",
    "usr/lib/firmware/nvidia",
    "usr/lib/firmware/nvidia/gsp.bin",
    "usr/lib/firmware/nvidia/tu102",
    "usr/lib/firmware/nvidia/tu102/acr-link",
    "usr/lib/firmware/nvidia/tu102/acr.bin",
  ]);
  // Parents keep the source's own metadata.
  assert.equal(kept.get("usr/lib")?.mode, 0o750);
});

test("--include is repeatable; a file can be included on its own; overlapping paths are fine", () => {
  const kept = includeSubtrees(os(), [
    "usr/lib/firmware/amdgpu",
    "usr/bin/sh",
    "usr/lib/firmware/amdgpu/a.bin",
  ]);
  assert.deepEqual(paths(kept), [
    "usr",
    "usr/bin",
    "usr/bin/sh",
    "usr/lib",
    "usr/lib/firmware",
    "usr/lib/firmware/amdgpu",
    "usr/lib/firmware/amdgpu/a.bin",
  ]);
});

test("parents missing from the source (a last-layer tree) are made as 0755 directories", () => {
  const kept = includeSubtrees(tree([{ path: "usr/lib/firmware/x/y.bin" }]), [
    "usr/lib/firmware/x",
  ]);
  assert.deepEqual(paths(kept), [
    "usr",
    "usr/lib",
    "usr/lib/firmware",
    "usr/lib/firmware/x",
    "usr/lib/firmware/x/y.bin",
  ]);
  assert.equal(kept.get("usr/lib")?.type, "dir");
  assert.equal(kept.get("usr/lib")?.mode, 0o755);
});

test("a path that matches nothing is an error naming it; a symlinked parent says where to look", () => {
  assert.throws(
    () => includeSubtrees(os(), ["usr/lib/firmware/nvidia", "usr/lib/firmware/intel"]),
    (e: unknown) =>
      e instanceof ExtctlError &&
      e.message === "--include usr/lib/firmware/intel matches nothing in the source",
  );
  assert.throws(
    () => includeSubtrees(os(), ["usr/lib/firmware/intel"], { lastLayerOnly: true }),
    (e: unknown) =>
      e instanceof ExtctlError &&
      e.hint ===
        "only the image's last layer was read: add --layers all to look in the whole image",
  );
  assert.throws(
    () => includeSubtrees(os(), ["lib/firmware"]),
    /--include lib\/firmware matches nothing in the source: lib is a symlink to usr\/lib/,
  );
});

test("include paths: absolute and '..' refused, outside usr/ refused, '.' and slashes normalised", () => {
  const usr = ["usr"];
  assert.deepEqual(checkIncludePaths(["usr/lib/firmware/nvidia/", "./usr//bin", "usr/bin"], usr), [
    "usr/lib/firmware/nvidia",
    "usr/bin",
  ]);
  assert.throws(() => checkIncludePaths(["/usr/lib/firmware"], usr), /is absolute/);
  assert.throws(() => checkIncludePaths(["usr/../etc"], usr), /climbs out of the tree/);
  assert.throws(() => checkIncludePaths(["usr/lib/.."], usr), /climbs out/);
  assert.throws(() => checkIncludePaths(["./"], usr), /names no path/);
  assert.throws(
    () => checkIncludePaths(["etc/ssh"], usr),
    /--include etc\/ssh lies outside usr\/, which this extension carries/,
  );
  assert.throws(
    () => checkIncludePaths(["opt/nvidia"], usr),
    (e: unknown) => e instanceof ExtctlError && e.hint === "add --with-opt to carry /opt",
  );
  assert.throws(
    () => checkIncludePaths(["lib/firmware/"], usr),
    (e: unknown) =>
      e instanceof ExtctlError &&
      e.hint === "on a merged-/usr OS /lib is /usr/lib: --include usr/lib/firmware",
  );
  assert.deepEqual(checkIncludePaths(["opt/nvidia"], ["usr", "opt"]), ["opt/nvidia"]);
  assert.deepEqual(checkIncludePaths(["etc/ssh"], ["etc"]), ["etc/ssh"]);
});

test("an OS image's os-release outside the included subtree does not stop the build", () => {
  const kept = includeSubtrees(os(), ["usr/lib/firmware/nvidia"]);
  const filtered = filterTree(kept, { kind: "sysext" });
  assert.ok(!filtered.tree.has("usr/lib/os-release"));
  assert.throws(
    () => filterTree(includeSubtrees(os(), ["usr/lib"]), { kind: "sysext" }),
    /usr\/lib\/os-release/,
  );
});

test("carried content counts regular files and their bytes, a hardlink's bytes once", () => {
  const kept = filterTree(includeSubtrees(os(), ["usr/lib/firmware/nvidia"]), {
    kind: "sysext",
  }).tree;
  assert.deepEqual(carriedContent(kept), { files: 2, bytes: 3200 });
});

test("a hardlink whose other name lies outside the subtree becomes the file, bytes and all", () => {
  const source = tree([
    { path: "usr/share/blob", size: 64 },
    {
      path: "usr/lib/firmware/x/blob",
      type: "hardlink",
      hardlinkTarget: "usr/share/blob",
      size: 64,
      content: { kind: "inline", data: Buffer.alloc(64) },
    },
  ]);
  const kept = filterTree(includeSubtrees(source, ["usr/lib/firmware/x"]), {
    kind: "sysext",
  }).tree;
  assert.equal(kept.get("usr/lib/firmware/x/blob")?.type, "file");
  assert.ok(!kept.has("usr/share/blob"));
  assert.deepEqual(carriedContent(kept), { files: 1, bytes: 64 });
});
