// The tree walk's limits against crafted directory graphs: a directory reached twice (shared,
// not only looping back), and paths longer than PATH_MAX. The filesystem is an in-memory graph.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  walkEach,
  type ImageFilesystem,
  type TreeEntry,
} from "../../../../src/domain/image/tree.js";
import { ExtctlError } from "../../../../src/util/errors.js";

/** A graph of directories by key: children[key] lists [name, key of the child]. */
function graphFs(children: Record<number, [string, number][]>): ImageFilesystem {
  const entry = (path: string, name: string, key: number): TreeEntry => ({
    path,
    name,
    type: children[key] ? "dir" : "file",
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 0,
    nlink: 1,
    inode: key,
    key,
    ref: key,
  });
  return {
    type: "squashfs",
    compression: "none",
    blockSize: 4096,
    root: () => Promise.resolve(entry("/", "", 0)),
    list: (dir) =>
      Promise.resolve(
        (children[dir.key] ?? []).map(([name, key]) =>
          entry(dir.path === "/" ? `/${name}` : `${dir.path}/${name}`, name, key),
        ),
      ),
    xattrs: () => Promise.resolve({}),
    read: () => {
      throw new Error("not used");
    },
  };
}

async function count(fs: ImageFilesystem): Promise<number> {
  let n = 0;
  await walkEach(fs, undefined, () => {
    n++;
  });
  return n;
}

test("a real tree is walked completely", async () => {
  assert.equal(
    await count(
      graphFs({
        0: [
          ["a", 1],
          ["b", 2],
        ],
        1: [["f", 3]],
        2: [["f", 4]],
      }),
    ),
    5,
  );
});

test("a directory reached under two paths is refused before the walk multiplies", async () => {
  // Level k has two entries that are both level k+1: 2^40 paths without the check.
  const levels: Record<number, [string, number][]> = {};
  for (let k = 0; k < 40; k++)
    levels[k] = [
      ["a", k + 1],
      ["b", k + 1],
    ];
  levels[40] = [];
  await assert.rejects(
    count(graphFs(levels)),
    (e: unknown) =>
      e instanceof ExtctlError &&
      /\/a\/a.*\/b is a directory already listed under another/.test(e.message),
  );
});

test("a path longer than PATH_MAX is refused", async () => {
  const name = "x".repeat(250);
  const levels: Record<number, [string, number][]> = {};
  for (let k = 0; k < 20; k++) levels[k] = [[name, k + 1]];
  levels[20] = [];
  await assert.rejects(count(graphFs(levels)), /a path longer than 4096 bytes/);
});
