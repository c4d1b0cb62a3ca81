import assert from "node:assert/strict";
import { test } from "node:test";
import {
  choosePlatform,
  hostPlatform,
  parsePlatform,
  platformMatches,
  samePlatform,
} from "../../../../src/domain/oci/platform.js";

test("Node architectures map to OCI names", () => {
  assert.deepEqual(hostPlatform("x64", "linux"), { os: "linux", architecture: "amd64" });
  assert.deepEqual(hostPlatform("arm64", "linux"), { os: "linux", architecture: "arm64" });
  assert.deepEqual(hostPlatform("arm", "linux", 7), {
    os: "linux",
    architecture: "arm",
    variant: "v7",
  });
  assert.equal(hostPlatform("ia32", "linux").architecture, "386");
});

test("platforms parse as os/arch[/variant] and anything else is a usage error", () => {
  assert.deepEqual(parsePlatform("linux/arm/v6"), {
    os: "linux",
    architecture: "arm",
    variant: "v6",
  });
  for (const bad of ["linux", "linux/", "a/b/c/d", "Linux/AMD64"]) {
    assert.throws(
      () => parsePlatform(bad),
      (e: Error & { code?: string }) => e.code === "usage",
    );
  }
});

test("the entry for the wanted platform is chosen, an exact variant first", () => {
  const entries = [
    { id: 1, platform: { os: "linux", architecture: "amd64" } },
    { id: 2, platform: { os: "linux", architecture: "arm", variant: "v6" } },
    { id: 3, platform: { os: "linux", architecture: "arm", variant: "v7" } },
    { id: 4, platform: { os: "linux", architecture: "arm64" } },
    { id: 5 },
  ];
  assert.equal(choosePlatform(entries, parsePlatform("linux/amd64"))?.id, 1);
  assert.equal(choosePlatform(entries, parsePlatform("linux/arm/v7"))?.id, 3);
  // A bare "arm" is ARMv7, as containerd reads it; v6 is only the fallback.
  assert.equal(choosePlatform(entries, parsePlatform("linux/arm"))?.id, 3);
  assert.equal(choosePlatform(entries, parsePlatform("linux/arm64/v8"))?.id, 4);
  assert.equal(choosePlatform(entries, parsePlatform("linux/arm/v5")), undefined);
  assert.equal(choosePlatform(entries, parsePlatform("windows/amd64")), undefined);
});

const P = (text: string) => parsePlatform(text);
const at = (...platforms: string[]) => platforms.map((p, id) => ({ id, platform: P(p) }));

test("arm64 without a variant is v8: either spelling matches the other", () => {
  assert.ok(platformMatches(P("linux/arm64/v8"), P("linux/arm64")));
  assert.ok(platformMatches(P("linux/arm64"), P("linux/arm64/v8")));
  assert.equal(platformMatches(P("linux/arm64/v8"), P("linux/arm64/v9")), false);
  assert.equal(choosePlatform(at("linux/arm64/v9", "linux/arm64"), P("linux/arm64"))?.id, 1);
  assert.equal(choosePlatform(at("linux/arm64/v9", "linux/arm64/v8"), P("linux/arm64"))?.id, 1);
  assert.equal(choosePlatform(at("linux/arm64", "linux/arm64/v9"), P("linux/arm64/v9"))?.id, 1);
});

test("arm without a variant is v7: a bare arm entry serves v7, and v7 is preferred", () => {
  assert.ok(platformMatches(P("linux/arm/v7"), P("linux/arm")));
  assert.equal(platformMatches(P("linux/arm/v6"), P("linux/arm")), false);
  assert.equal(choosePlatform(at("linux/arm/v6", "linux/arm"), P("linux/arm/v7"))?.id, 1);
  assert.equal(choosePlatform(at("linux/arm/v5", "linux/arm/v6"), P("linux/arm"))?.id, 0);
  assert.equal(choosePlatform(at("linux/arm/v6", "linux/arm/v7"), P("linux/arm/v6"))?.id, 0);
});

test("an exact variant wins over an earlier entry that only matches", () => {
  const entries = at("linux/amd64/v3", "linux/amd64", "linux/amd64/v2");
  assert.equal(choosePlatform(entries, P("linux/amd64"))?.id, 1);
  assert.equal(choosePlatform(entries, P("linux/amd64/v2"))?.id, 2);
  assert.equal(choosePlatform(entries, P("linux/amd64/v4")), undefined);
  assert.equal(choosePlatform(at("linux/amd64/v3"), P("linux/amd64"))?.id, 0);
});

test("the same platform for publishing is the one written, variant and all", () => {
  assert.ok(samePlatform(P("linux/arm/v7"), P("linux/arm/v7")));
  assert.equal(samePlatform(P("linux/arm64"), P("linux/arm64/v8")), false);
  assert.equal(samePlatform(P("linux/amd64"), P("linux/arm64")), false);
});
