// Publishing ORAS-style artifacts to a real docker-registry and installing them back; skopeo
// reads what extctl pushed, so the manifests are checked by an independent client.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { ociSource } from "../../src/domain/sources/oci/index.js";
import { publish } from "../../src/operations/publish.js";
import { createContext } from "../../src/util/context.js";
import type { Logger } from "../../src/util/log.js";
import { runExtctl } from "../helpers/cli.js";
import { requirePeers } from "../helpers/peers.js";
import {
  inspectRaw,
  startCorruptingProxy,
  startCuttingProxy,
  startRegistry,
} from "../helpers/registry.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { stubImage } from "../helpers/stub-image.js";

const PEERS = ["docker-registry", "skopeo"];

const silent: Logger = { verbosity: "quiet", warn() {}, info() {}, debug() {} };

async function store(t: TestContext) {
  const root = await tempRoot(t);
  const storeDir = path.join(root, "var/lib/kairos/extensions");
  await mkdir(storeDir, { recursive: true });
  return { root, storeDir, ctx: createContext({ root, log: silent }) };
}

async function imageFile(t: TestContext, name: string, size: number, seed: number) {
  const dir = await tempDir(t);
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 131 + seed) & 0xff;
  // A squashfs magic in front: install admits only what looks like an extension image.
  stubImage(name).copy(data, 0, 0, 64);
  const file = path.join(dir, name);
  await writeFile(file, data);
  return { file, data };
}

test("a published artifact reads back with skopeo and installs byte for byte", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  const { file, data } = await imageFile(t, "hello.sysext.raw", 100_000, 1);
  const ctx = createContext({ log: silent });
  const result = await publish(ctx, {
    image: file,
    reference: `oci://${registry.host}/exts/hello:1.0`,
    insecureRegistries: [registry.host],
  });
  assert.match(
    result.pinned,
    new RegExp(`^oci://${registry.host}/exts/hello:1\\.0@sha256:[a-f0-9]{64}$`),
  );
  assert.equal(result.layer.outcome, "uploaded");

  const manifest = JSON.parse(inspectRaw(`${registry.host}/exts/hello:1.0`)) as {
    artifactType: string;
    config: { mediaType: string; size: number };
    layers: { digest: string; size: number; annotations: Record<string, string> }[];
  };
  assert.equal(manifest.artifactType, "application/vnd.kairos.sysext.raw");
  assert.equal(manifest.config.mediaType, "application/vnd.oci.empty.v1+json");
  assert.equal(manifest.layers.length, 1);
  assert.equal(
    manifest.layers[0]?.annotations["org.opencontainers.image.title"],
    "hello.sysext.raw",
  );
  assert.equal(manifest.layers[0]?.size, data.length);
  // The bytes skopeo reads for the tag hash to the digest extctl printed.
  const digest = `sha256:${createHash("sha256")
    .update(inspectRaw(`${registry.host}/exts/hello:1.0`))
    .digest("hex")}`;
  assert.equal(digest, result.digest);

  const { storeDir, ctx: installCtx } = await store(t);
  const fetched = await ociSource.fetch(installCtx, {
    uri: result.pinned,
    kind: "sysext",
    storeDir,
    insecureRegistries: [registry.host],
  });
  assert.deepEqual(
    fetched.map((f) => f.name),
    ["hello.sysext.raw"],
  );
  assert.deepEqual(await readFile(path.join(storeDir, "hello.sysext.raw")), data);

  // Publishing the same file again finds the blob already there.
  const again = await publish(ctx, {
    image: file,
    reference: `oci://${registry.host}/exts/hello:1.0`,
    insecureRegistries: [registry.host],
  });
  assert.equal(again.layer.outcome, "existed");
  assert.equal(again.digest, result.digest);
});

test("an artifact's blob: a flipped byte is refused, a cut connection resumes with Range", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  // Several of the writer's 4 MiB slabs.
  const { file, data } = await imageFile(t, "big.sysext.raw", 13 * 1024 * 1024 + 5, 3);
  const ctx = createContext({ log: silent });
  const { pinned } = await publish(ctx, {
    image: file,
    reference: `oci://${registry.host}/exts/big:1`,
    insecureRegistries: [registry.host],
  });
  const through = (host: string) => pinned.replace(registry.host, host);

  const flipping = await startCorruptingProxy(t, registry.url);
  const first = await store(t);
  await assert.rejects(
    ociSource.fetch(first.ctx, {
      uri: through(flipping),
      kind: "sysext",
      storeDir: first.storeDir,
      insecureRegistries: [flipping],
    }),
    (e: Error & { code?: string }) => e.code === "checksum" && /corrupted/.test(e.message),
  );
  assert.deepEqual(await readdir(first.storeDir), []);

  const cutting = await startCuttingProxy(t, registry.url);
  const second = await store(t);
  await ociSource.fetch(second.ctx, {
    uri: through(cutting.host),
    kind: "sysext",
    storeDir: second.storeDir,
    insecureRegistries: [cutting.host],
  });
  assert.ok((await readFile(path.join(second.storeDir, "big.sysext.raw"))).equals(data));
  assert.equal(cutting.blobRanges.length, 2, "one cut GET, one resume");
  assert.equal(cutting.blobRanges[0], "");
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(cutting.blobRanges[1] ?? "")?.[1]);
  assert.ok(resumedAt > 0 && resumedAt < data.length, `resumed at ${cutting.blobRanges[1]}`);
});

test("a large blob goes up in chunks, and another repository mounts it instead of uploading", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  const { file, data } = await imageFile(t, "big.sysext.raw", 300_000, 7);
  const ctx = createContext({ log: silent });
  const first = await publish(ctx, {
    image: file,
    reference: `oci://${registry.host}/exts/big:1`,
    insecureRegistries: [registry.host],
    chunkSize: 64 * 1024,
  });
  assert.equal(first.layer.outcome, "uploaded");
  const mounted = await publish(ctx, {
    image: file,
    reference: `oci://${registry.host}/other/big:1`,
    insecureRegistries: [registry.host],
    mountFrom: ["exts/big"],
  });
  assert.equal(mounted.layer.outcome, "mounted");
  for (const repo of ["exts/big:1", "other/big:1"]) {
    const { storeDir, ctx: installCtx } = await store(t);
    await ociSource.fetch(installCtx, {
      uri: `oci://${registry.host}/${repo}`,
      kind: "sysext",
      storeDir,
      insecureRegistries: [registry.host],
    });
    assert.deepEqual(await readFile(path.join(storeDir, "big.sysext.raw")), data);
  }
});

test("--index adds and replaces one platform in a multi-arch index", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  const ctx = createContext({ log: silent });
  const ref = `oci://${registry.host}/exts/multi:2`;
  const opts = { insecureRegistries: [registry.host], index: true };
  const amd1 = await imageFile(t, "multi.confext.raw", 5000, 1);
  const arm = await imageFile(t, "multi.confext.raw", 6000, 2);
  const amd2 = await imageFile(t, "multi.confext.raw", 7000, 3);
  await publish(ctx, { image: amd1.file, reference: ref, ...opts, platform: "linux/amd64" });
  await publish(ctx, { image: arm.file, reference: ref, ...opts, platform: "linux/arm64" });
  const last = await publish(ctx, {
    image: amd2.file,
    reference: ref,
    ...opts,
    platform: "linux/amd64",
  });
  assert.equal(last.kind, "confext");

  const index = JSON.parse(inspectRaw(`${registry.host}/exts/multi:2`)) as {
    mediaType: string;
    manifests: { digest: string; platform: { architecture: string } }[];
  };
  assert.equal(index.mediaType, "application/vnd.oci.image.index.v1+json");
  assert.deepEqual(index.manifests.map((m) => m.platform.architecture).sort(), ["amd64", "arm64"]);
  assert.equal(
    index.manifests.find((m) => m.platform.architecture === "amd64")?.digest,
    last.manifestDigest,
  );

  for (const [platform, expected] of [
    ["linux/amd64", amd2.data],
    ["linux/arm64", arm.data],
  ] as const) {
    const root = await tempRoot(t);
    const storeDir = path.join(root, "var/lib/kairos/confexts");
    await mkdir(storeDir, { recursive: true });
    await ociSource.fetch(createContext({ root, log: silent }), {
      uri: last.pinned,
      kind: "confext",
      storeDir,
      platform,
      insecureRegistries: [registry.host],
    });
    assert.deepEqual(await readFile(path.join(storeDir, "multi.confext.raw")), expected);
  }

  // A confext artifact is not installed as a sysext.
  const { storeDir, ctx: sysCtx } = await store(t);
  await assert.rejects(
    ociSource.fetch(sysCtx, {
      uri: ref,
      kind: "sysext",
      storeDir,
      platform: "linux/amd64",
      insecureRegistries: [registry.host],
    }),
    (e: Error & { code?: string }) => e.code === "incompatible",
  );
  assert.deepEqual(await readdir(storeDir), []);
});

test("extctl publish on the command line prints the pinned reference", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  const { file } = await imageFile(t, "cli.sysext.raw", 2000, 9);
  const result = await runExtctl([
    "publish",
    file,
    `oci://${registry.host}/exts/cli:1`,
    "--insecure-registry",
    registry.host,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const pinned = result.stdout.trim();
  assert.match(pinned, new RegExp(`^oci://${registry.host}/exts/cli:1@sha256:[a-f0-9]{64}$`));
  const digest = pinned.split("@")[1] as string;
  const raw = inspectRaw(`${registry.host}/exts/cli@${digest}`);
  assert.match(raw, /application\/vnd\.kairos\.sysext\.raw/);

  const bad = await runExtctl([
    "publish",
    file,
    "oci://Not/Valid:ref",
    "--insecure-registry",
    registry.host,
  ]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid OCI reference .*repository component "Not"/);
});

test("extctl sysext install oci:// on the command line stores a published artifact", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const registry = await startRegistry(t, { kind: "htpasswd", users: { ops: "pw" } });
  const { file, data } = await imageFile(t, "fleet.sysext.raw", 40_000, 5);
  const publishRun = await runExtctl([
    "publish",
    file,
    `oci://${registry.host}/exts/fleet:3`,
    "--insecure-registry",
    registry.host,
    "--creds",
    "ops:pw",
  ]);
  assert.equal(publishRun.code, 0, publishRun.stderr);
  const root = await tempRoot(t);
  const denied = await runExtctl(
    [
      "--root",
      root,
      "sysext",
      "install",
      publishRun.stdout.trim(),
      "--insecure-registry",
      registry.host,
    ],
    { env: { HOME: root, REGISTRY_AUTH_FILE: "", XDG_RUNTIME_DIR: "", DOCKER_CONFIG: "" } },
  );
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /HTTP 401/);
  const installed = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    publishRun.stdout.trim(),
    "--insecure-registry",
    registry.host,
    "--creds",
    "ops:pw",
  ]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.deepEqual(
    await readFile(path.join(root, "var/lib/kairos/extensions/fleet.sysext.raw")),
    data,
  );
});
