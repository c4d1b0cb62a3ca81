// The source walk opens each directory without following symlinks and checks it is the one its
// parent's listing saw, so a directory swapped during the walk cannot be listed.
import assert from "node:assert/strict";
import { lstat, mkdir, rename, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { openDirectory, readDirectoryTree } from "../../../../../src/domain/build/sources/dir.js";
import { ExtctlError } from "../../../../../src/util/errors.js";
import { tempDir } from "../../../../helpers/tmp.js";

test("the walk lists a tree with the inode of every file", async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, "usr/bin"), { recursive: true });
  await writeFile(path.join(dir, "usr/bin/tool"), "x");
  await symlink("tool", path.join(dir, "usr/bin/alias"));
  const tree = await readDirectoryTree(dir);
  const tool = tree.get("usr/bin/tool");
  const st = await lstat(path.join(dir, "usr/bin/tool"));
  assert.deepEqual(tool?.content, {
    kind: "host",
    path: path.join(dir, "usr/bin/tool"),
    dev: st.dev,
    ino: st.ino,
  });
  assert.equal(tree.get("usr/bin/alias")?.linkTarget, "tool");
});

test("a directory swapped for a symlink or another directory after it was listed is refused", async (t) => {
  const dir = await tempDir(t);
  const outside = await tempDir(t);
  await mkdir(path.join(dir, "sub"));
  const seen = await lstat(path.join(dir, "sub"));
  await rename(path.join(dir, "sub"), path.join(dir, "sub.old"));
  await symlink(outside, path.join(dir, "sub"));
  await assert.rejects(
    openDirectory(path.join(dir, "sub"), seen),
    (e: unknown) => e instanceof ExtctlError && /sub was replaced by a symlink/.test(e.message),
  );
  await rename(path.join(dir, "sub"), path.join(dir, "sub.link"));
  await mkdir(path.join(dir, "sub"));
  await assert.rejects(
    openDirectory(path.join(dir, "sub"), seen),
    (e: unknown) => e instanceof ExtctlError && /replaced by another directory/.test(e.message),
  );
});
