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

test("Root.writePath refuses an absolute symlink and a relative one climbing above the root, naming it", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "extctl-root-"));
  try {
    await mkdir(path.join(dir, "var/lib"), { recursive: true });
    await symlink("/tmp", path.join(dir, "var/lib/abs"));
    await symlink("../../../tmp", path.join(dir, "var/lib/up"));
    const root = new Root(dir);
    for (const p of ["/var/lib/abs/x.raw", "/var/lib/up/x.raw"]) {
      await assert.rejects(root.writePath(p), (e: Error & { code?: string }) => {
        assert.equal(e.code, "outside-root");
        assert.match(e.message, new RegExp(`${p} \\(${dir}${p}\\) resolves outside the root`));
        return true;
      });
    }
    // The leaf itself is never followed with leaf: "entry" (it is the link to make or remove).
    await assert.rejects(root.writePath("/var/lib/abs", { leaf: "follow" }));
    assert.equal(await root.writePath("/var/lib/abs", { leaf: "entry" }), `${dir}/var/lib/abs`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("Root.writePath follows relative links that stay inside, and costs nothing on the host root", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "extctl-root-"));
  try {
    await mkdir(path.join(dir, "data/ext"), { recursive: true });
    await mkdir(path.join(dir, "var/lib/kairos"), { recursive: true });
    await symlink("../../../data/ext", path.join(dir, "var/lib/kairos/extensions"));
    const root = new Root(dir);
    assert.equal(
      await root.writePath("/var/lib/kairos/extensions/common/a.raw", { leaf: "entry" }),
      `${dir}/data/ext/common/a.raw`,
    );
    assert.equal(await new Root("/").writePath("/var/lib/../lib/x"), "/var/lib/x");
    assert.equal(await new Root("/").readPath("/etc/os-release"), "/etc/os-release");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("Root.readPath resolves an escaping link inside the root", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "extctl-root-"));
  try {
    await mkdir(path.join(dir, "etc/extctl"), { recursive: true });
    await symlink("/etc/shadow", path.join(dir, "etc/extctl/policy"));
    await symlink("../../../../../../etc/shadow", path.join(dir, "etc/extctl/up"));
    const root = new Root(dir);
    assert.equal(await root.readPath("/etc/extctl/policy"), `${dir}/etc/shadow`);
    assert.equal(await root.readPath("/etc/extctl/up"), `${dir}/etc/shadow`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
