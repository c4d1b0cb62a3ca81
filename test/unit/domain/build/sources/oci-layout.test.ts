import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { pack } from "tar-stream";
import { openImage } from "../../../../../src/domain/build/sources/oci-layout.js";
import { readArchiveEntries } from "../../../../../src/domain/build/sources/tar.js";

async function tarOf(members: { name: string; body: Buffer | string }[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on("data", (c: unknown) => {
    chunks.push(c as Buffer);
  });
  const done = new Promise<void>((r) => p.on("end", () => r()));
  for (const m of members) {
    await new Promise<void>((resolve, reject) =>
      p.entry({ name: m.name, mode: 0o644 }, m.body, (e) => (e ? reject(e) : resolve())),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function scratch(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "extctl-oci-unit-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const sha = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function layers() {
  return [
    await tarOf([{ name: "usr/bin/one", body: "1" }]),
    await tarOf([{ name: "usr/bin/two", body: "22" }]),
  ];
}

test("a docker save archive yields its layers in order, readable as byte ranges", async (t) => {
  const [l1, l2] = await layers();
  const manifest = JSON.stringify([
    { Config: "c.json", RepoTags: ["tool:1"], Layers: ["a/layer.tar", "b/layer.tar"] },
  ]);
  const file = path.join(await scratch(t), "save.tar");
  await writeFile(
    file,
    await tarOf([
      { name: "manifest.json", body: manifest },
      { name: "a/layer.tar", body: l1! },
      { name: "b/layer.tar", body: l2! },
    ]),
  );
  const image = await openImage(file, "amd64");
  assert.equal(image.layers.length, 2);
  const entries = await readArchiveEntries(image.layers[1]!, 1);
  assert.deepEqual(
    entries.map((e) => [e.path, e.size]),
    [["usr/bin/two", 2]],
  );
  assert.equal((await openImage(`${file}:1`, "amd64")).layers.length, 2);
  await assert.rejects(openImage(`${file}:2`, "amd64"), /no image tagged 2/);
});

test("an OCI layout directory picks the tag, then the platform of an index", async (t) => {
  const [l1, l2] = await layers();
  const dir = await scratch(t);
  await mkdir(path.join(dir, "blobs/sha256"), { recursive: true });
  const blob = async (b: Buffer | string) => {
    const d = sha(b);
    await writeFile(path.join(dir, "blobs/sha256", d.slice(7)), b);
    return d;
  };
  const amd = JSON.stringify({
    layers: [{ digest: await blob(l1!) }, { digest: await blob(l2!) }],
  });
  const arm = JSON.stringify({ layers: [{ digest: await blob(l1!) }] });
  const index = JSON.stringify({
    manifests: [
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: await blob(amd),
        platform: { architecture: "amd64", os: "linux" },
      },
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: await blob(arm),
        platform: { architecture: "arm64", os: "linux" },
      },
    ],
  });
  const top = JSON.stringify({
    manifests: [
      {
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: await blob(index),
        annotations: { "org.opencontainers.image.ref.name": "v1" },
      },
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: await blob(arm),
        annotations: { "org.opencontainers.image.ref.name": "other" },
      },
    ],
  });
  await writeFile(path.join(dir, "index.json"), top);
  assert.equal((await openImage(`${dir}:v1`, "amd64")).layers.length, 2);
  assert.equal((await openImage(`${dir}:v1`, "arm64")).layers.length, 1);
  await assert.rejects(openImage(`${dir}:v1`, "riscv64"), /no linux\/riscv64 variant/);
  await assert.rejects(openImage(dir, "amd64"), /holds 2 images; name one/);
  await assert.rejects(openImage(`${dir}:nope`, "amd64"), /has no tag nope \(tags: v1, other\)/);
  const layer = (await openImage(`${dir}:v1`, "amd64")).layers[0]!;
  assert.equal(layer.digest, sha(l1!));
});

test("a missing image is a clear error", async () => {
  await assert.rejects(
    openImage("/nonexistent/layout:v1", "amd64"),
    /the image \/nonexistent\/layout does not exist/,
  );
});
