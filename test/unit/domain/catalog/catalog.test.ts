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
  tagOf(j).sysext = { amd64: { oci: "ghcr.io/org/tool:1.0.0" } };
  refused(
    j,
    /layers\[0\]\.tags\[0\]\.sysext\.amd64\.oci "ghcr\.io\/org\/tool:1\.0\.0" is not pinned/,
  );
  j = base();
  tagOf(j).sysext = { amd64: { oci: `oci://${ref("tool", "1.0.0", "amd64")}` } };
  refused(j, /sysext\.amd64\.oci .* has a scheme/);
  j = base();
  tagOf(j).sysext = { amd64: { oci: "org/tool@sha256:" + "a".repeat(64) } };
  refused(j, /not a registry host/);
  j = base();
  tagOf(j).sysext = { amd64: "ghcr.io/x@sha256:" + "a".repeat(64) };
  refused(j, /sysext\.amd64 is not an object/);
  j = base();
  tagOf(j).rollout = { percent: 130 };
  refused(j, /tags\[0\]\.rollout\.percent is not a number from 0 to 100/);
  j = base();
  tagOf(j).digest = "md5:abc";
  refused(j, /tags\[0\]\.digest/);
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
