// parseCatalog reads Kairos's releases.json and refuses anything else with the catalog's URL and
// the JSON path of the bad field.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  MAX_CATALOG_BYTES,
  parseCatalog,
  pinnedReferenceProblem,
} from "../../../../src/domain/catalog/catalog.js";
import { ExtctlError } from "../../../../src/util/errors.js";
import { bytesOf, catalogJson, ref } from "./fixtures.js";

const URL = "https://example.org/releases.json";

function refused(json: unknown, pattern: RegExp): void {
  assert.throws(
    () => parseCatalog(Buffer.isBuffer(json) ? json : bytesOf(json), URL),
    (e: unknown) => {
      assert.ok(e instanceof ExtctlError);
      assert.equal(e.code, "catalog");
      assert.match(e.message, new RegExp(URL.replace(/[.]/g, "\\.")));
      assert.match(e.message, pattern);
      return true;
    },
  );
}

test("Kairos's fixture parses: repo, layers, latest, tags, per-arch sysext references", () => {
  const json = catalogJson([{ name: "fwupd", latest: "2.1.7", tags: ["2.1.7", "2.1.6"] }]);
  // Kairos's second tag has no image at all.
  ((json.layers as Record<string, unknown>[])[0]?.tags as Record<string, unknown>[])[1]!.sysext =
    {};
  const catalog = parseCatalog(bytesOf(json), URL);
  assert.equal(catalog.url, URL);
  assert.equal(catalog.generated, "2026-09-01T08:24:03Z");
  assert.equal(catalog.repo, "kairos-io/hadron-layers");
  assert.equal(catalog.layers.length, 1);
  const layer = catalog.layers[0]!;
  assert.equal(layer.name, "fwupd");
  assert.equal(layer.latest, "2.1.7");
  assert.equal(layer.title, "fwupd");
  assert.deepEqual(
    layer.tags.map((t) => t.tag),
    ["2.1.7", "2.1.6"],
  );
  assert.equal(layer.tags[0]!.images.sysext!.amd64, ref("fwupd", "2.1.7", "amd64"));
  assert.deepEqual(layer.tags[1]!.images.sysext, {});
  assert.equal(layer.tags[0]!.images.confext, undefined);
});

test("confext entries and rollout gates are read", () => {
  const catalog = parseCatalog(
    bytesOf(
      catalogJson([
        { name: "cfg", latest: "1.0.0", tags: [{ tag: "1.0.0", confext: ["amd64"], rollout: 25 }] },
      ]),
    ),
    URL,
  );
  const tag = catalog.layers[0]!.tags[0]!;
  assert.equal(tag.images.confext!.amd64, ref("cfg", "1.0.0", "amd64", "confext"));
  assert.deepEqual(tag.rollout, { percent: 25 });
});

test("not JSON, not an object and a missing layers list are refused", () => {
  refused(Buffer.from("{ nope"), /not JSON/);
  refused([], /the top level is not an object/);
  refused({ generated: "2026-09-01T08:24:03Z" }, /layers is missing/);
  refused({ layers: {} }, /layers is not an array/);
});

test("a catalog over 8 MiB is refused before it is parsed", () => {
  refused(Buffer.alloc(MAX_CATALOG_BYTES + 1, 0x20), /more than the 8388608/);
});

test("each bad field is named by its JSON path", () => {
  const base = () => catalogJson([{ name: "tool", latest: "1.0.0", tags: ["1.0.0"] }]);
  const tagOf = (j: Record<string, unknown>) =>
    ((j.layers as Record<string, unknown>[])[0]!.tags as Record<string, unknown>[])[0]!;
  let j = base();
  j.generated = "yesterday";
  refused(j, /generated is not an ISO 8601 time/);
  j = base();
  (j.layers as Record<string, unknown>[])[0]!.name = 42;
  refused(j, /layers\[0\]\.name is not a string/);
  j = base();
  (j.layers as Record<string, unknown>[])[0]!.name = "../evil";
  refused(j, /layers\[0\]\.name "\.\.\/evil" is not an extension name/);
  j = base();
  tagOf(j).tag = "";
  refused(j, /layers\[0\]\.tags\[0\]\.tag/);
  j = base();
  tagOf(j).rollout = { percent: 130 };
  refused(j, /tags\[0\]\.rollout\.percent is not a number from 0 to 100/);
  j = base();
  (j.layers as unknown[]).push((j.layers as unknown[])[0]);
  refused(j, /layers\[1\]\.name repeats "tool"/);
});

test("pinned references: a registry host, a path and a sha256 digest; nothing else", () => {
  const hex = "0".repeat(64);
  assert.equal(pinnedReferenceProblem(`ghcr.io/a/b@sha256:${hex}`), undefined);
  assert.equal(pinnedReferenceProblem(`localhost:5000/a@sha256:${hex}`), undefined);
  assert.equal(pinnedReferenceProblem(`10.0.0.1:5000/a/b/c@sha256:${hex}`), undefined);
  assert.match(pinnedReferenceProblem(`ghcr.io/a/b:1.0@sha256:${hex}`)!, /not host/);
  assert.match(pinnedReferenceProblem(`ghcr.io/a/b@sha256:${hex.slice(1)}`)!, /not host/);
  assert.match(pinnedReferenceProblem(`ghcr.io/A/b@sha256:${hex}`)!, /not host/);
  assert.match(pinnedReferenceProblem(`docker://ghcr.io/a@sha256:${hex}`)!, /scheme/);
  assert.match(pinnedReferenceProblem(`ghcr.io:99999/a@sha256:${hex}`)!, /port/);
});

test("a bad image entry spoils only that entry: kept as invalid, warned about, the rest usable", () => {
  const base = () =>
    catalogJson([
      { name: "tool", latest: "1.0.0", tags: ["1.0.0"] },
      { name: "other", latest: "2.0.0", tags: ["2.0.0"] },
    ]);
  const tagOf = (j: Record<string, unknown>) =>
    ((j.layers as Record<string, unknown>[])[0]!.tags as Record<string, unknown>[])[0]!;
  const cases: [unknown, RegExp][] = [
    [
      { oci: "ghcr.io/org/tool:1.0.0" },
      /sysext\.arm64\.oci "ghcr\.io\/org\/tool:1\.0\.0" is not pinned/,
    ],
    [{ oci: `oci://${ref("tool", "1.0.0", "arm64")}` }, /sysext\.arm64\.oci .* has a scheme/],
    [{ oci: "org/tool@sha256:" + "a".repeat(64) }, /not a registry host/],
    // Kairos's own catalog_test.go fixture: an upper-case hex digest for arm64.
    [{ oci: "ghcr.io/org/tool@sha256:" + "A".repeat(64) }, /not host\[:port\]/],
    ["ghcr.io/x@sha256:" + "a".repeat(64), /sysext\.arm64 is not an object/],
    [{ oci: 7 }, /sysext\.arm64\.oci is not a string/],
  ];
  for (const [entry, pattern] of cases) {
    const j = base();
    (tagOf(j).sysext as Record<string, unknown>).arm64 = entry;
    const catalog = parseCatalog(bytesOf(j), URL);
    const tag = catalog.layers[0]!.tags[0]!;
    assert.equal(tag.images.sysext!.amd64, ref("tool", "1.0.0", "amd64"));
    assert.equal(tag.images.sysext!.arm64, undefined);
    assert.match(tag.invalid!.sysext!.arm64!, pattern);
    assert.match(tag.invalid!.sysext!.arm64!, /^layers\[0\]\.tags\[0\]\.sysext\.arm64/);
    assert.equal(catalog.warnings.length, 1);
    assert.match(catalog.warnings[0]!, pattern);
    assert.equal(catalog.layers[1]!.tags[0]!.invalid, undefined);
  }
  // An empty or absent oci publishes nothing there, as "sysext": {} does: no warning.
  const j = base();
  tagOf(j).sysext = { amd64: { oci: "" }, arm64: {} };
  const empty = parseCatalog(bytesOf(j), URL);
  assert.deepEqual(empty.layers[0]!.tags[0]!.images.sysext, {});
  assert.deepEqual(empty.warnings, []);
  // Display-only fields and unknown architecture names are dropped with a warning.
  const k = base();
  tagOf(k).digest = "md5:abc";
  tagOf(k).created = "yesterday";
  (tagOf(k).sysext as Record<string, unknown>)["Not An Arch"] = { oci: "x" };
  const dropped = parseCatalog(bytesOf(k), URL);
  assert.equal(dropped.layers[0]!.tags[0]!.digest, undefined);
  assert.equal(dropped.layers[0]!.tags[0]!.created, undefined);
  assert.deepEqual(dropped.warnings, [
    "layers[0].tags[0].digest is not sha256:<64 hex digits>; ignored",
    "layers[0].tags[0].created is not an ISO 8601 time; ignored",
    'layers[0].tags[0].sysext has "Not An Arch", which is not a Go architecture; ignored',
  ]);
});
