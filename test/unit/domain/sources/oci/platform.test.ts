import assert from "node:assert/strict";
import { test } from "node:test";
import {
  choosePlatform,
  hostPlatform,
  parsePlatform,
} from "../../../../../src/domain/sources/oci/platform.js";

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
  assert.equal(choosePlatform(entries, parsePlatform("linux/arm"))?.id, 2);
  assert.equal(choosePlatform(entries, parsePlatform("linux/arm64/v8"))?.id, 4);
  assert.equal(choosePlatform(entries, parsePlatform("linux/arm/v5")), undefined);
  assert.equal(choosePlatform(entries, parsePlatform("windows/amd64")), undefined);
});
