import assert from "node:assert/strict";
import { test } from "node:test";
import {
  apiHost,
  formatReference,
  parseReference,
  pinnedReference,
} from "../../../../src/domain/oci/reference.js";

const DIGEST = `sha256:${"ab".repeat(32)}`;

test("a full reference keeps registry, repository and tag", () => {
  assert.deepEqual(parseReference("oci://quay.io/org/ext:1.0"), {
    registry: "quay.io",
    repository: "org/ext",
    tag: "1.0",
  });
});

test("a registry with a port is told apart from a tag", () => {
  assert.deepEqual(parseReference("oci://127.0.0.1:5000/exts/x"), {
    registry: "127.0.0.1:5000",
    repository: "exts/x",
    tag: "latest",
  });
  assert.deepEqual(parseReference("localhost/x:2"), {
    registry: "localhost",
    repository: "x",
    tag: "2",
  });
});

test("a bare name gets docker.io, library/ and :latest", () => {
  assert.deepEqual(parseReference("oci://alpine"), {
    registry: "docker.io",
    repository: "library/alpine",
    tag: "latest",
  });
  assert.deepEqual(parseReference("oci:kairos/ext"), {
    registry: "docker.io",
    repository: "kairos/ext",
    tag: "latest",
  });
  assert.equal(parseReference("index.docker.io/foo").repository, "library/foo");
  assert.equal(apiHost("docker.io"), "registry-1.docker.io");
});

test("a pinned reference carries its digest and no default tag", () => {
  assert.deepEqual(parseReference(`oci://repo@${DIGEST}`), {
    registry: "docker.io",
    repository: "library/repo",
    digest: DIGEST,
  });
  const both = parseReference(`oci://ghcr.io/a/b:v1@${DIGEST}`);
  assert.equal(both.tag, "v1");
  assert.equal(both.digest, DIGEST);
  assert.equal(formatReference(both), `oci://ghcr.io/a/b:v1@${DIGEST}`);
  assert.equal(
    pinnedReference(parseReference("oci://ghcr.io/a/b:v1"), DIGEST),
    `oci://ghcr.io/a/b:v1@${DIGEST}`,
  );
});

for (const [input, rule] of [
  ["oci://", /empty/],
  ["oci://Quay.io/Org/x", /component "Org"/],
  ["oci://quay.io/org/x:-bad", /a tag is/],
  ["oci://quay.io/org/x:" + "t".repeat(129), /a tag is/],
  ["oci://quay.io/org/x@sha256:1234", /digest must be sha256/],
  ["oci://quay.io/org//x", /empty component/],
  ["oci://quay.io/org/x y", /whitespace/],
  ["oci://quay.io:99999/x", /"quay\.io:99999" .*port above 65535/],
  ["oci://256.1.1.1:5000/x", /looks like an IPv4 address but is not one/],
  ["oci://example.123/x", /"example\.123" is not a valid host/],
  ["oci://quay.io/org/x--_y", /component/],
  ["oci://quay.io/" + "a/".repeat(130) + "b", /longer than 255/],
] as const) {
  test(`"${input.slice(0, 40)}" is refused with the rule it breaks`, () => {
    assert.throws(
      () => parseReference(input),
      (e: Error & { code?: string }) => e.code === "invalid-uri" && rule.test(e.message),
    );
  });
}

test("the registry is canonical: one spelling for every way of writing the same host and port", () => {
  for (const spelling of ["LOCALHOST:5001", "localhost:05001"])
    assert.equal(parseReference(`oci://${spelling}/exts/a:1`).registry, "localhost:5001");
  for (const spelling of [
    "127.1:5001",
    "2130706433:5001",
    "0x7f000001:5001",
    "127.000.000.001:5001",
    "[::ffff:127.0.0.1]:5001",
  ])
    assert.equal(parseReference(`oci://${spelling}/exts/a:1`).registry, "127.0.0.1:5001");
  assert.equal(parseReference("oci://Quay.IO:443/org/x").registry, "quay.io");
});
