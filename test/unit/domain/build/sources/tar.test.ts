import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { pack } from "tar-stream";
import { compress } from "zstd-napi";
import {
  archiveOfFile,
  detectCompression,
  readArchiveEntries,
  walkArchive,
} from "../../../../../src/domain/build/sources/tar.js";
import { indexTar } from "../../../../../src/domain/build/sources/tar-index.js";

type Member = {
  name: string;
  type?: "file" | "directory" | "symlink" | "link" | "character-device";
  body?: string;
  linkname?: string;
  mode?: number;
};

async function tarBytes(members: Member[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on("data", (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((r) => p.on("end", () => r()));
  for (const m of members) {
    await new Promise<void>((resolve, reject) =>
      p.entry(
        {
          name: m.name,
          type: m.type ?? "file",
          mode: m.mode ?? 0o644,
          mtime: new Date(1_600_000_000_000),
          ...(m.linkname ? { linkname: m.linkname } : {}),
        },
        m.body ?? "",
        (e) => (e ? reject(e) : resolve()),
      ),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function file(t: TestContext, name: string, data: Buffer): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "extctl-tar-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const p = path.join(dir, name);
  await writeFile(p, data);
  return p;
}

const members: Member[] = [
  { name: "./usr/", type: "directory", mode: 0o755 },
  { name: "./usr/bin/tool", body: "hello", mode: 0o755 },
  { name: "usr/bin/link", type: "link", linkname: "./usr/bin/tool" },
  { name: "usr/bin/sym", type: "symlink", linkname: "tool" },
  { name: `usr/share/${"long-name-".repeat(20)}end`, body: "long" },
];

for (const [label, wrap, expected] of [
  ["plain", (b: Buffer) => b, "none"],
  ["gzip", (b: Buffer) => gzipSync(b), "gzip"],
  ["zstd", (b: Buffer) => compress(b), "zstd"],
] as const) {
  test(`a ${label} tar lists its entries with types, modes and normalised paths`, async (t) => {
    const archive = await archiveOfFile(await file(t, "r.tar", wrap(await tarBytes(members))));
    assert.equal(await detectCompression(archive), expected);
    const entries = await readArchiveEntries(archive, 3);
    assert.deepEqual(
      entries.map((e) => [
        e.path,
        e.type,
        e.mode.toString(8),
        e.size,
        e.linkTarget ?? e.hardlinkTarget ?? "",
      ]),
      [
        ["usr", "dir", "755", 0, ""],
        ["usr/bin/tool", "file", "755", 5, ""],
        ["usr/bin/link", "hardlink", "644", 0, "usr/bin/tool"],
        ["usr/bin/sym", "symlink", "644", 0, "tool"],
        [`usr/share/${"long-name-".repeat(20)}end`, "file", "644", 4, ""],
      ],
    );
    assert.deepEqual(entries[1]!.content, { kind: "layer", layer: 3, ordinal: 1 });
    assert.equal(entries[1]!.mtime, 1_600_000_000);
  });
}

test("walkArchive hands out member bytes by ordinal", async (t) => {
  const archive = await archiveOfFile(await file(t, "r.tar.gz", gzipSync(await tarBytes(members))));
  const got: string[] = [];
  await walkArchive(archive, async (_h, ordinal, body) => {
    if (ordinal !== 4) return;
    for await (const c of body) got.push(c.toString());
  });
  assert.equal(got.join(""), "long");
});

test("a wrong layer digest and a non-tar file are clear errors", async (t) => {
  const archive = await archiveOfFile(await file(t, "r.tar", await tarBytes(members)));
  await assert.rejects(
    readArchiveEntries({ ...archive, digest: `sha256:${"0".repeat(64)}` }, 0),
    /does not match its digest/,
  );
  const junk = await archiveOfFile(
    await file(t, "junk", Buffer.from("this is not a tar archive at all".repeat(40))),
  );
  await assert.rejects(readArchiveEntries(junk, 0), /cannot read .* as a tar archive/);
});

test("'..' in a member path is refused", async (t) => {
  const archive = await archiveOfFile(
    await file(t, "r.tar", await tarBytes([{ name: "usr/../../etc/passwd", body: "x" }])),
  );
  await assert.rejects(readArchiveEntries(archive, 0), /climbs out of the tree/);
});

test("indexTar finds each member's data offset, long names included", async (t) => {
  const bytes = await tarBytes(members);
  const index = await indexTar(await file(t, "r.tar", bytes));
  const long = index.get(`usr/share/${"long-name-".repeat(20)}end`)!;
  assert.equal(bytes.subarray(long.offset, long.offset + long.size).toString(), "long");
  const tool = index.get("usr/bin/tool")!;
  assert.equal(bytes.subarray(tool.offset, tool.offset + tool.size).toString(), "hello");
  assert.equal(index.get("usr/bin/link")?.linkname, "./usr/bin/tool");
});
