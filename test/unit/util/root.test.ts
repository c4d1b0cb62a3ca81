import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, symlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Root } from "../../../src/util/root.js";

test("Root.path maps node paths inside the root and never above it", () => {
  const root = new Root("/srv/node");
  assert.equal(root.path("/var/lib/kairos"), "/srv/node/var/lib/kairos");
  assert.equal(root.path("/../../etc/passwd"), "/srv/node/etc/passwd");
  assert.equal(new Root("/").path("/run/extensions"), "/run/extensions");
});

test("Root.resolve follows absolute symlinks inside the root, like a chroot", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "extctl-root-"));
  try {
    await mkdir(path.join(dir, "store"), { recursive: true });
    await symlink("/store", path.join(dir, "link"));
    await symlink("../../../../etc", path.join(dir, "store", "up"));
    const root = new Root(dir);
    assert.equal(await root.resolve("/link/x.raw"), "/store/x.raw");
    assert.equal(await root.resolve("/store/up/passwd"), "/etc/passwd");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
