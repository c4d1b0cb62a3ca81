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

const HINT = "pick another --arch or another image";
const linux = (architecture: string, variant?: string) => ({
  os: "linux",
  architecture,
  ...(variant ? { variant } : {}),
});
const open = (spec: string, architecture = "amd64", variant?: string) =>
  openImage(spec, linux(architecture, variant), HINT);

const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const INDEX = "application/vnd.oci.image.index.v1+json";
const LAYER = "application/vnd.oci.image.layer.v1.tar";

/** An OCI layout directory with a blob writer: each blob's descriptor has digest and size. */
async function layoutDir(t: TestContext) {
  const dir = await scratch(t);
  await mkdir(path.join(dir, "blobs/sha256"), { recursive: true });
  const blob = async (mediaType: string, b: Buffer | string) => {
    const digest = sha(b);
    await writeFile(path.join(dir, "blobs/sha256", digest.slice(7)), b);
    return { mediaType, digest, size: Buffer.byteLength(b) };
  };
  const manifest = async (...layerBlobs: Buffer[]) =>
    blob(
      MANIFEST,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST,
        config: await blob("application/vnd.oci.image.config.v1+json", "{}"),
        layers: await Promise.all(layerBlobs.map((l) => blob(LAYER, l))),
      }),
    );
  return { dir, blob, manifest };
}

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
  const image = await open(file);
  assert.equal(image.layers.length, 2);
  const entries = await readArchiveEntries(image.layers[1]!, 1);
  assert.deepEqual(
    entries.map((e) => [e.path, e.size]),
    [["usr/bin/two", 2]],
  );
  assert.equal((await open(`${file}:1`)).layers.length, 2);
  await assert.rejects(open(`${file}:2`), /no image tagged 2/);
});

test("an OCI layout directory picks the tag, then the platform of an index", async (t) => {
  const [l1, l2] = await layers();
  const { dir, blob, manifest } = await layoutDir(t);
  const amd = await manifest(l1!, l2!);
  const arm = await manifest(l1!);
  const index = await blob(
    INDEX,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { ...amd, platform: linux("amd64") },
        { ...arm, platform: linux("arm64") },
      ],
    }),
  );
  const top = JSON.stringify({
    schemaVersion: 2,
    manifests: [
      { ...index, annotations: { "org.opencontainers.image.ref.name": "v1" } },
      { ...arm, annotations: { "org.opencontainers.image.ref.name": "other" } },
    ],
  });
  await writeFile(path.join(dir, "index.json"), top);
  assert.equal((await open(`${dir}:v1`)).layers.length, 2);
  assert.equal((await open(`${dir}:v1`, "arm64")).layers.length, 1);
  await assert.rejects(
    open(`${dir}:v1`, "riscv64"),
    (e: Error & { hint?: string }) =>
      /:v1 has no image for linux\/riscv64 \(it has: linux\/amd64, linux\/arm64\)/.test(
        e.message,
      ) && e.hint === HINT,
  );
  await assert.rejects(open(dir), /holds 2 images; name one/);
  await assert.rejects(open(`${dir}:nope`), /has no tag nope \(tags: v1, other\)/);
  const layer = (await open(`${dir}:v1`)).layers[0]!;
  assert.equal(layer.digest, sha(l1!));
});

test("an OCI layout index is read with install's variant rules", async (t) => {
  const [l1, l2] = await layers();
  const { dir, blob, manifest } = await layoutDir(t);
  const v9 = await manifest(l1!);
  const v8 = await manifest(l1!, l2!);
  const armV6 = await manifest(l2!);
  const armV7 = await manifest(l1!, l2!, l1!);
  const index = await blob(
    INDEX,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { ...v9, platform: linux("arm64", "v9") },
        { ...v8, platform: linux("arm64") },
        { ...armV6, platform: linux("arm", "v6") },
        { ...armV7, platform: linux("arm", "v7") },
        { ...v8, platform: { os: "unknown", architecture: "unknown" } },
      ],
    }),
  );
  await writeFile(
    path.join(dir, "index.json"),
    JSON.stringify({ schemaVersion: 2, manifests: [index] }),
  );
  // Before, the first arm64 entry (v9) was taken; an arm64 without variant is v8.
  assert.equal((await open(dir, "arm64")).layers.length, 2);
  assert.equal((await open(dir, "arm64", "v8")).layers.length, 2);
  assert.equal((await open(dir, "arm64", "v9")).layers.length, 1);
  assert.equal((await open(dir, "arm")).layers.length, 3, "a bare arm is v7");
  assert.equal((await open(dir, "arm", "v6")).layers.length, 1);
  await assert.rejects(open(dir, "arm", "v5"), /has no image for linux\/arm\/v5/);
});

test("a malformed layout document is a format error that names the layout", async (t) => {
  const { dir, manifest } = await layoutDir(t);
  const m = await manifest();
  await writeFile(
    path.join(dir, "index.json"),
    JSON.stringify({ schemaVersion: 2, manifests: [{ digest: m.digest, size: m.size }] }),
  );
  await assert.rejects(
    open(dir),
    (e: Error & { code?: string }) =>
      e.code === "format" &&
      e.message ===
        `the OCI layout ${dir} holds a malformed manifest: manifests[0] has no mediaType`,
  );
});

test("a missing image is a clear error", async () => {
  await assert.rejects(
    open("/nonexistent/layout:v1"),
    /the image \/nonexistent\/layout does not exist/,
  );
});
