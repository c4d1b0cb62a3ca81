// squashfs and erofs readers against the real tools: listings equal `unsquashfs -lln` and a
// kernel mount of the erofs image, and every file's bytes equal the source tree's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { lstat, mkdir, readFile, readdir, readlink } from "node:fs/promises";
import path from "node:path";
import { FileSource } from "../../src/util/bytes.js";
import { openSquashfs } from "../../src/domain/image/squashfs/reader.js";
import { openErofs } from "../../src/domain/image/erofs/reader.js";
import { lookup, modeString, walk, type ImageFilesystem } from "../../src/domain/image/tree.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir } from "../helpers/tmp.js";
import { DEEP_DIR, LONG_NAME, XATTRS, makeFixtureTree } from "./readers-fixture.js";

interface Row {
  mode: string;
  owner: string;
  size: number;
  path: string;
  target?: string;
}

async function listWithReader(fs: ImageFilesystem, includeDirSize: boolean): Promise<Row[]> {
  const rows: Row[] = [];
  for await (const e of walk(fs)) {
    rows.push({
      mode: modeString(e.type, e.mode),
      owner: `${e.uid}/${e.gid}`,
      size: e.type === "dir" && !includeDirSize ? 0 : e.size,
      path: e.path,
      ...(e.target !== undefined ? { target: e.target } : {}),
    });
  }
  return rows.sort((a, b) => a.path.localeCompare(b.path));
}

function parseUnsquashfs(text: string): Row[] {
  const rows: Row[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\S{10}) (\d+\/\d+)\s+(\d+) \S+ \S+ squashfs-root(.*)$/.exec(line);
    if (!m) continue;
    const [pathPart, target] = (m[4] as string).split(" -> ");
    rows.push({
      mode: m[1] as string,
      owner: m[2] as string,
      size: Number(m[3]),
      path: pathPart || "/",
      ...(target !== undefined ? { target } : {}),
    });
  }
  return rows.sort((a, b) => a.path.localeCompare(b.path));
}

async function listMount(dir: string): Promise<Row[]> {
  const rows: Row[] = [];
  async function visit(rel: string): Promise<void> {
    const abs = path.join(dir, rel);
    const st = await lstat(abs);
    const type = st.isDirectory()
      ? "dir"
      : st.isSymbolicLink()
        ? "symlink"
        : st.isFile()
          ? "file"
          : "fifo";
    rows.push({
      mode: modeString(type, st.mode & 0o7777),
      owner: `${st.uid}/${st.gid}`,
      size: st.size,
      path: rel === "" ? "/" : `/${rel}`,
      ...(type === "symlink" ? { target: await readlink(abs) } : {}),
    });
    if (type === "dir")
      for (const n of await readdir(abs)) await visit(rel === "" ? n : `${rel}/${n}`);
  }
  await visit("");
  return rows.sort((a, b) => a.path.localeCompare(b.path));
}

async function checkContentAndXattrs(fs: ImageFilesystem, tree: string): Promise<void> {
  let files = 0;
  for await (const e of walk(fs)) {
    if (e.type !== "file") continue;
    const parts: Buffer[] = [];
    let biggest = 0;
    for await (const chunk of fs.read(e)) {
      parts.push(chunk);
      biggest = Math.max(biggest, chunk.length);
    }
    // Streaming: no chunk is the whole of a multi-MiB file.
    if (e.size > 2 * 1024 * 1024)
      assert.ok(biggest <= 1024 * 1024, `${e.path} came in a ${biggest}-byte chunk`);
    assert.ok(
      Buffer.concat(parts).equals(await readFile(path.join(tree, e.path))),
      `bytes of ${e.path} differ`,
    );
    files++;
  }
  assert.ok(files > 700);
  for (const [file, attrs] of Object.entries(XATTRS)) {
    const entry = await lookup(fs, `/${file}`);
    assert.ok(entry, `${file} missing`);
    const got = await fs.xattrs(entry);
    for (const [k, v] of Object.entries(attrs))
      assert.equal(got[k]?.toString(), v, `xattr ${k} of ${file}`);
  }
  const deep = await lookup(fs, `/usr/share/${DEEP_DIR}/bottom`);
  assert.equal(deep?.size, 5);
  assert.ok(await lookup(fs, `/usr/share/${LONG_NAME}`));
  const link = await lookup(fs, "/usr/bin/abs-link", { follow: true });
  assert.equal(link?.path, "/usr/share/doc/notes");
  const hard = [await lookup(fs, "/usr/bin/tool"), await lookup(fs, "/usr/bin/tool-hardlink")];
  assert.equal(hard[0]?.inode, hard[1]?.inode);
  assert.equal(hard[0]?.nlink, 2);
  for (const n of [0, 333, 650, 699]) {
    const name = `entry-with-a-longish-name-${String(n).padStart(4, "0")}`;
    const e = await lookup(fs, `/usr/share/many/${name}`);
    assert.equal(e?.name, name);
  }
  assert.equal(await lookup(fs, "/usr/share/many/entry-with-a-longish-name-9999"), undefined);
}

test("squashfs: listing equals unsquashfs -lln and bytes equal the source, for every compressor", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "unsquashfs", "python3"], { root: true })) return;
  const dir = await tempDir(t);
  const tree = path.join(dir, "tree");
  await mkdir(tree);
  await makeFixtureTree(tree);
  for (const comp of ["gzip", "lzo", "lz4", "xz", "zstd", "lzma"]) {
    await t.test(comp, async () => {
      const img = path.join(dir, `${comp}.img`);
      run("mksquashfs", [tree, img, "-noappend", "-comp", comp, "-quiet", "-no-progress"]);
      const src = await FileSource.open(img);
      try {
        const fs = await openSquashfs(src);
        assert.equal(fs.compression, comp);
        const want = parseUnsquashfs(run("unsquashfs", ["-lln", "-d", "squashfs-root", img]));
        assert.deepEqual(await listWithReader(fs, true), want);
        const many = await lookup(fs, "/usr/share/many");
        assert.ok(
          ((many?.ref as { dirIndex?: unknown[] }).dirIndex ?? []).length > 0,
          "the big directory has an index",
        );
        await checkContentAndXattrs(fs, tree);
      } finally {
        await src.close();
      }
    });
  }
});

test("erofs: listing equals a kernel mount and bytes equal the source, for each layout mkfs.erofs makes", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs", "mount", "umount", "python3"], { root: true })) return;
  const dir = await tempDir(t);
  const tree = path.join(dir, "tree");
  await mkdir(tree);
  await makeFixtureTree(tree);
  const variants: [string, string[]][] = [
    ["plain", []],
    ["chunked", ["--chunksize=8192"]],
    ["lz4", ["-zlz4"]],
    ["lz4hc", ["-zlz4hc"]],
    ["lz4hc-bigpcluster", ["-zlz4hc", "-C65536"]],
    ["lz4-legacy-index", ["-zlz4", "-Elegacy-compress"]],
  ];
  for (const [name, args] of variants) {
    await t.test(name, async () => {
      const img = path.join(dir, `${name}.img`);
      run("mkfs.erofs", [...args, img, tree]);
      const mnt = path.join(dir, `mnt-${name}`);
      await mkdir(mnt);
      run("mount", ["-t", "erofs", "-o", "ro,loop", img, mnt]);
      let want: Row[];
      try {
        want = await listMount(mnt);
      } finally {
        run("umount", [mnt]);
      }
      const src = await FileSource.open(img);
      try {
        const fs = await openErofs(src);
        assert.deepEqual(await listWithReader(fs, true), want);
        assert.equal(fs.compression, args.some((a) => a.startsWith("-z")) ? "lz4" : "none");
        await checkContentAndXattrs(fs, tree);
      } finally {
        await src.close();
      }
    });
  }
});
