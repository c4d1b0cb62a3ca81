// The source registry is the only list of URI schemes: every scheme finds its source, an unknown
// one is refused as before, and the messages that list schemes are made from the table.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ExtctlError } from "../../../../src/util/errors.js";
import {
  SCHEMES,
  SOURCES,
  canonicalSourceUri,
  schemeList,
  sourceFor,
} from "../../../../src/domain/sources/source-registry.js";
import { schemeOf, sourceOf } from "../../../../src/domain/sources/uri.js";

test("every registered scheme finds its source, whatever its case", () => {
  assert.ok(SOURCES.length > 0);
  for (const source of SOURCES) {
    for (const scheme of source.schemes) {
      assert.equal(sourceFor(scheme), source);
      assert.equal(sourceOf(`${scheme}://example.org/tool.sysext.raw`), source);
      assert.equal(schemeOf(`${scheme.toUpperCase()}://example.org/t.raw`), scheme);
    }
  }
  assert.deepEqual(SCHEMES, ["file", "http", "https", "oci"]);
});

test("each source module handles exactly the schemes it is registered under", async () => {
  for (const source of SOURCES) {
    const loaded = await source.load();
    assert.deepEqual([...loaded.schemes], [...source.schemes]);
    assert.equal(typeof loaded.fetch, "function");
  }
});

test("no scheme is registered twice", () => {
  assert.equal(new Set(SCHEMES).size, SCHEMES.length);
});

function refusal(uri: string): ExtctlError {
  try {
    sourceOf(uri);
  } catch (e) {
    assert.ok(e instanceof ExtctlError);
    return e;
  }
  assert.fail(`${uri} was accepted`);
}

test("an unknown scheme, or no URI at all, is refused as before", () => {
  const ftp = refusal("ftp://example.org/t.raw");
  assert.equal(ftp.code, "invalid-uri");
  assert.equal(ftp.message, 'unsupported URI scheme "ftp:" in "ftp://example.org/t.raw"');
  assert.equal(
    ftp.hint,
    "use file:, http:, https: or oci:, e.g. https://example.org/tool.sysext.raw",
  );
  const bare = refusal("tool.sysext.raw");
  assert.equal(bare.code, "invalid-uri");
  assert.equal(bare.message, '"tool.sysext.raw" is not a URI');
  assert.throws(() => schemeOf("ftp://x"), /unsupported URI scheme "ftp:"/);
});

test("scheme lists read as a sentence", () => {
  assert.equal(schemeList(), "file:, http:, https: or oci:");
  assert.equal(schemeList(["oci"]), "oci:");
  assert.equal(schemeList(["file", "oci"]), "file: or oci:");
});

test("the sources apply demands a pin from are those the table marks", () => {
  assert.deepEqual(
    SOURCES.filter((s) => s.pin !== undefined).map((s) => `${s.label}${s.pin}`),
    ["http(s):sha256", "oci:digest"],
  );
});

test("docker: and container: (kairos-sdk's spellings) are oci:, and only the scheme changes", () => {
  const oci = sourceFor("oci");
  assert.equal(sourceFor("docker"), oci);
  assert.equal(sourceFor("container"), oci);
  assert.equal(sourceOf("docker://quay.io/org/tool:1.0"), oci);
  assert.equal(canonicalSourceUri("docker://quay.io/org/tool:1.0"), "oci://quay.io/org/tool:1.0");
  assert.equal(
    canonicalSourceUri("CONTAINER://localhost:5000/t@sha256:" + "a".repeat(64)),
    "oci://localhost:5000/t@sha256:" + "a".repeat(64),
  );
  assert.equal(canonicalSourceUri("container:r.example/x"), "oci:r.example/x");
  for (const same of ["oci://r.example/x", "https://e.org/docker://x", "file:/docker", "x"])
    assert.equal(canonicalSourceUri(same), same);
  // Aliases are not schemes of their own: lists and completion name oci: once.
  assert.ok(!SCHEMES.includes("docker"));
});
