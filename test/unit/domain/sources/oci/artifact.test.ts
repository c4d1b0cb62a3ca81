import assert from "node:assert/strict";
import { test } from "node:test";
import { parseImageManifest } from "../../../../../src/domain/oci/manifest.js";
import { artifactKind, isPlainRawName } from "../../../../../src/domain/sources/oci/artifact.js";
import { safeEntryPath } from "../../../../../src/domain/sources/oci/pull.js";
import { artifactManifest, mergeIndexEntries } from "../../../../../src/domain/sources/oci/push.js";

const D = (c: string) => `sha256:${c.repeat(64)}`;

test("only plain *.raw names are accepted as store file names", () => {
  assert.ok(isPlainRawName("x.sysext.raw"));
  for (const bad of [
    "../x.raw",
    "a/b.raw",
    ".hidden.raw",
    "x.img",
    ".raw",
    "a..b.raw",
    "x\0.raw",
  ]) {
    assert.equal(isPlainRawName(bad), false, bad);
  }
});

test("tar paths with .. or a leading / are refused; ./ and empty parts are ignored", () => {
  assert.deepEqual(safeEntryPath("./x.sysext.raw"), ["x.sysext.raw"]);
  assert.deepEqual(safeEntryPath("usr//bin/"), ["usr", "bin"]);
  assert.throws(
    () => safeEntryPath("../x"),
    (e: Error & { code?: string }) => e.code === "format",
  );
  assert.throws(() => safeEntryPath("a/../../x"), /climbs out/);
  assert.throws(() => safeEntryPath("/etc/passwd"), /absolute path/);
});

test("an artifact is known by artifactType or config media type", () => {
  const manifest = parseImageManifest("application/vnd.oci.image.manifest.v1+json", {
    schemaVersion: 2,
    config: { mediaType: "application/vnd.kairos.confext.raw", digest: D("a"), size: 2 },
    layers: [],
  });
  assert.equal(artifactKind(manifest), "confext");
  manifest.config.mediaType = "application/vnd.oci.image.config.v1+json";
  assert.equal(artifactKind(manifest), undefined);
  manifest.artifactType = "application/vnd.kairos.sysext.raw";
  assert.equal(artifactKind(manifest), "sysext");
});

test("the artifact manifest is deterministic and ORAS-shaped", () => {
  const layer = { mediaType: "application/vnd.kairos.sysext.raw", digest: D("c"), size: 5 };
  const a = artifactManifest("application/vnd.kairos.sysext.raw", layer);
  assert.deepEqual(a, artifactManifest("application/vnd.kairos.sysext.raw", layer));
  const json = JSON.parse(a.toString()) as Record<string, unknown>;
  assert.equal(json.artifactType, "application/vnd.kairos.sysext.raw");
  assert.deepEqual(json.config, {
    mediaType: "application/vnd.oci.empty.v1+json",
    digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    size: 2,
    data: "e30=",
  });
});

test("merging an index entry replaces the same platform and keeps the others", () => {
  const existing = [
    { mediaType: "m", digest: D("1"), size: 1, platform: { os: "linux", architecture: "amd64" } },
    { mediaType: "m", digest: D("2"), size: 1, platform: { os: "linux", architecture: "arm64" } },
  ];
  const merged = mergeIndexEntries(existing, {
    mediaType: "m",
    digest: D("3"),
    size: 1,
    platform: { os: "linux", architecture: "amd64" },
  });
  assert.deepEqual(
    merged.map((d) => d.digest),
    [D("2"), D("3")],
  );
});
