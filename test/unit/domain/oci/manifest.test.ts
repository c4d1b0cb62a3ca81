import assert from "node:assert/strict";
import { test } from "node:test";
import {
  documentKind,
  parseImageManifest,
  parseIndex,
  type DocumentOrigin,
} from "../../../../src/domain/oci/manifest.js";

const D = (c: string) => `sha256:${c.repeat(64)}`;

test("malformed manifests are refused with what is wrong", () => {
  const base = { schemaVersion: 2, config: { mediaType: "x", digest: D("a"), size: 2 } };
  assert.throws(
    () =>
      parseImageManifest("", { ...base, layers: [{ mediaType: "x", digest: "md5:1", size: 1 }] }),
    /layers\[0\] has no sha256 digest/,
  );
  assert.throws(
    () =>
      parseImageManifest("", { ...base, layers: [{ mediaType: "x", digest: D("b"), size: -1 }] }),
    /invalid size/,
  );
  assert.throws(() => documentKind("", { schemaVersion: 1 }), /schema 1/);
  assert.equal(documentKind("", { manifests: [] }), "index");
});

test("a registry's malformed document is a registry error, a layout's a format error", () => {
  const layout: DocumentOrigin = { code: "format", says: "the OCI layout /l holds" };
  const index = { manifests: [{ mediaType: "x", digest: D("a"), size: 1, platform: {} }] };
  assert.throws(
    () => parseIndex("", index),
    (e: Error & { code?: string }) =>
      e.code === "registry" &&
      e.message ===
        "the registry served a malformed manifest: manifests[0].platform lacks os or architecture",
  );
  assert.throws(
    () => parseIndex("", index, layout),
    (e: Error & { code?: string }) =>
      e.code === "format" && e.message.startsWith("the OCI layout /l holds a malformed manifest"),
  );
  assert.throws(
    () => documentKind("", { schemaVersion: 1 }, layout),
    /\/l holds a Docker schema 1/,
  );
});

test("an index entry keeps its platform variant, and an empty variant is none", () => {
  const index = parseIndex("application/vnd.oci.image.index.v1+json", {
    manifests: [
      {
        mediaType: "m",
        digest: D("a"),
        size: 1,
        platform: { os: "linux", architecture: "arm", variant: "v6" },
      },
      {
        mediaType: "m",
        digest: D("b"),
        size: 1,
        platform: { os: "linux", architecture: "arm64", variant: "" },
      },
    ],
  });
  assert.deepEqual(
    index.manifests.map((m) => m.platform),
    [
      { os: "linux", architecture: "arm", variant: "v6" },
      { os: "linux", architecture: "arm64" },
    ],
  );
});
