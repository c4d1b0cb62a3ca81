import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { FROM_REGISTRY, MEDIA, type Descriptor } from "../../../../src/domain/oci/manifest.js";
import { parsePlatform } from "../../../../src/domain/oci/platform.js";
import {
  resolveImage,
  type FetchedDocument,
  type ManifestStore,
} from "../../../../src/domain/oci/resolve.js";

const sha = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;

/** Documents by digest, and one tag naming the top document. */
function memoryStore(docs: { mediaType: string; json: object }[]): {
  store: ManifestStore;
  descriptors: Descriptor[];
  fetched: string[];
} {
  const byDigest = new Map<string, FetchedDocument>();
  const descriptors: Descriptor[] = [];
  for (const d of docs) {
    const text = JSON.stringify(d.json);
    const digest = sha(text);
    byDigest.set(digest, {
      mediaType: d.mediaType,
      digest,
      json: d.json as Record<string, unknown>,
    });
    descriptors.push({ mediaType: d.mediaType, digest, size: text.length });
  }
  const fetched: string[] = [];
  const store: ManifestStore = {
    origin: FROM_REGISTRY,
    manifest(target) {
      const digest =
        typeof target === "string"
          ? target === "tag"
            ? descriptors.at(-1)!.digest
            : target
          : target.digest;
      fetched.push(digest);
      const doc = byDigest.get(digest);
      return doc ? Promise.resolve(doc) : Promise.reject(new Error(`no ${digest}`));
    },
  };
  return { store, descriptors, fetched };
}

const manifest = (layer: string) => ({
  mediaType: MEDIA.ociManifest,
  json: {
    schemaVersion: 2,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha("{}"), size: 2 },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(layer), size: 1 }],
  },
});

const options = { name: "reg/app:1", platformHint: "pick another" };

test("a manifest is the image; an index leads to the wanted platform's entry", async () => {
  const amd = manifest("amd");
  const armV6 = manifest("arm6");
  const armV7 = manifest("arm7");
  const first = memoryStore([amd, armV6, armV7]);
  const [dAmd, dV6, dV7] = first.descriptors as [Descriptor, Descriptor, Descriptor];
  const index = {
    mediaType: MEDIA.ociIndex,
    json: {
      schemaVersion: 2,
      manifests: [
        { ...dAmd, platform: { os: "linux", architecture: "amd64" } },
        { ...dV6, platform: { os: "linux", architecture: "arm", variant: "v6" } },
        { ...dV7, platform: { os: "linux", architecture: "arm", variant: "v7" } },
      ],
    },
  };
  const { store, descriptors } = memoryStore([amd, armV6, armV7, index]);
  const plain = await resolveImage(store, descriptors[0]!, parsePlatform("linux/arm64"), options);
  assert.equal(plain.digest, dAmd.digest, "a manifest is used whatever the platform");
  assert.equal(plain.indexDigest, undefined);

  const arm = await resolveImage(store, "tag", parsePlatform("linux/arm"), options);
  assert.equal(arm.digest, dV7.digest, "a bare arm is v7");
  assert.equal(arm.indexDigest, descriptors[3]!.digest);
  assert.deepEqual(arm.platform, { os: "linux", architecture: "arm", variant: "v7" });
  assert.equal(
    (await resolveImage(store, "tag", parsePlatform("linux/arm/v6"), options)).digest,
    dV6.digest,
  );
  await assert.rejects(
    resolveImage(store, "tag", parsePlatform("linux/riscv64"), options),
    (e: Error & { code?: string; hint?: string }) =>
      e.code === "not-found" &&
      e.message ===
        "reg/app:1 has no image for linux/riscv64 (it has: linux/amd64, linux/arm/v6, linux/arm/v7)" &&
      e.hint === "pick another",
  );
});

test("an index inside an index is refused, not followed", async () => {
  const inner = memoryStore([manifest("a")]);
  const innerIndex = {
    mediaType: MEDIA.ociIndex,
    json: {
      manifests: [{ ...inner.descriptors[0]!, platform: { os: "linux", architecture: "amd64" } }],
    },
  };
  const middle = memoryStore([manifest("a"), innerIndex]);
  const outer = {
    mediaType: MEDIA.ociIndex,
    json: {
      manifests: [{ ...middle.descriptors[1]!, platform: { os: "linux", architecture: "amd64" } }],
    },
  };
  const { store } = memoryStore([manifest("a"), innerIndex, outer]);
  await assert.rejects(
    resolveImage(store, "tag", parsePlatform("linux/amd64"), options),
    /nests an index inside an index/,
  );
});
