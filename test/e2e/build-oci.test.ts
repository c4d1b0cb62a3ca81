// Building from container images made by umoci at test time: with --layers all the image holds
// exactly the tree `umoci unpack` produces (whiteouts, opaque dirs, re-adds), and with --base
// exactly what the image adds over the base. Rootfs tarballs (tar.gz, tar.zst) build too.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
  chmod,
  link,
} from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { createContext } from "../../src/util/context.js";
import { MemoryLogger } from "../../src/util/log.js";
import { buildImage, type BuildOptions, type BuildResult } from "../../src/operations/build.js";
import { requirePeers, run } from "../helpers/peers.js";
import { startRegistry } from "../helpers/registry.js";
import { tempDir } from "../helpers/tmp.js";

type Listing = Map<string, string>;

/** path -> "type mode content" for every entry under `dir`, skipping extctl's release files. */
async function listTree(dir: string): Promise<Listing> {
  const out: Listing = new Map();
  const walk = async (host: string, rel: string) => {
    for (const name of (await readdir(host)).sort()) {
      const p = path.join(host, name);
      const r = rel ? `${rel}/${name}` : name;
      if (r.startsWith("usr/lib/extension-release.d")) continue;
      const st = await lstat(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        out.set(r, `dir ${mode}`);
        await walk(p, r);
      } else if (st.isSymbolicLink()) out.set(r, `symlink -> ${await readlink(p)}`);
      else
        out.set(
          r,
          `file ${mode} ${createHash("sha256")
            .update(await readFile(p))
            .digest("hex")}`,
        );
    }
  };
  await walk(dir, "");
  return out;
}

function only(listing: Listing, top: string): Listing {
  return new Map([...listing].filter(([p]) => p === top || p.startsWith(`${top}/`)));
}

async function write(dir: string, rel: string, content: string, mode = 0o644): Promise<void> {
  await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
  await writeFile(path.join(dir, rel), content);
  await chmod(path.join(dir, rel), mode);
}

/** A three-layer image: add files; delete some; an opaque directory and re-adds. */
async function threeLayerImage(t: TestContext): Promise<{ layout: string; work: string }> {
  const work = await tempDir(t, "extctl-oci-");
  const layout = path.join(work, "layout");
  run("umoci", ["init", "--layout", layout]);
  run("umoci", ["new", "--image", `${layout}:base`]);
  const b1 = path.join(work, "b1");
  run("umoci", ["unpack", "--image", `${layout}:base`, b1]);
  const r1 = path.join(b1, "rootfs");
  await write(r1, "usr/bin/tool", "#!/bin/sh\necho tool v1\n", 0o755);
  await write(r1, "usr/bin/gone", "deleted in layer 2, re-added in layer 3\n", 0o755);
  await write(r1, "usr/share/keep/a", "kept\n");
  await write(r1, "usr/share/opq/old1", "hidden by the opaque dir\n");
  await write(r1, "usr/share/opq/old2", "hidden too\n");
  await write(r1, "usr/share/gonedir/x", "whole dir deleted\n");
  await write(r1, "usr/lib/libx.so.1", "library\n");
  await symlink("libx.so.1", path.join(r1, "usr/lib/libx.so"));
  await write(r1, "etc/tool.conf", "not in a sysext\n");
  run("umoci", ["repack", "--image", `${layout}:v1`, b1]);

  const b2 = path.join(work, "b2");
  run("umoci", ["unpack", "--image", `${layout}:v1`, b2]);
  const r2 = path.join(b2, "rootfs");
  await rm(path.join(r2, "usr/bin/gone"));
  await rm(path.join(r2, "usr/share/gonedir"), { recursive: true });
  await write(r2, "usr/bin/tool", "#!/bin/sh\necho tool v2\n", 0o750);
  run("umoci", ["repack", "--image", `${layout}:v2`, b2]);

  const l3 = path.join(work, "l3");
  await write(l3, "usr/share/opq/.wh..wh..opq", "");
  await write(l3, "usr/share/opq/new", "the only file left here\n");
  await write(l3, "usr/bin/gone", "back again, different\n", 0o755);
  await write(l3, "usr/share/keep/.wh.a", "");
  await write(l3, "usr/share/keep/b", "new b\n");
  await link(path.join(l3, "usr/share/keep/b"), path.join(l3, "usr/share/keep/b-link"));
  const tar3 = path.join(work, "layer3.tar");
  run("tar", ["-cf", tar3, "--numeric-owner", "--owner=0", "--group=0", "-C", l3, "usr"]);
  run("umoci", ["raw", "add-layer", "--image", `${layout}:v2`, "--tag", "v3", tar3]);
  return { layout, work };
}

async function unpacked(t: TestContext, layout: string, tag: string): Promise<Listing> {
  const dir = path.join(await tempDir(t, "extctl-umoci-"), "bundle");
  run("umoci", ["unpack", "--image", `${layout}:${tag}`, dir]);
  return listTree(path.join(dir, "rootfs"));
}

async function builtListing(
  t: TestContext,
  options: Partial<BuildOptions> & Pick<BuildOptions, "source">,
): Promise<{ listing: Listing; result: BuildResult }> {
  const out = await tempDir(t);
  const result = await buildImage(createContext({ log: new MemoryLogger() }), {
    kind: "sysext",
    name: "oci",
    arch: "amd64",
    outputDir: out,
    format: "squashfs",
    noVerity: true,
    ...options,
  });
  const dir = path.join(out, "x");
  run("unsquashfs", ["-no-xattrs", "-d", dir, result.path]);
  return { listing: await listTree(dir), result };
}

test("--layers all gives exactly the usr/ tree umoci unpack shows", async (t) => {
  if (!requirePeers(t, ["umoci", "unsquashfs", "mksquashfs", "tar"], { root: true })) return;
  const { layout } = await threeLayerImage(t);
  const expected = only(await unpacked(t, layout, "v3"), "usr");
  const { listing } = await builtListing(t, { source: `oci-layout:${layout}:v3`, layers: "all" });
  assert.deepEqual(listing, expected);
  // The behaviours the image exercises, spelled out.
  assert.ok(!listing.has("usr/share/opq/old1") && listing.has("usr/share/opq/new"));
  assert.ok(!listing.has("usr/share/gonedir") && !listing.has("usr/share/keep/a"));
  assert.match(listing.get("usr/bin/tool") ?? "", /^file 750 /);
  assert.ok(![...listing.keys()].some((p) => p.includes(".wh.")));
});

test("--base gives exactly what the image adds over the base, as two umoci unpacks differ", async (t) => {
  if (!requirePeers(t, ["umoci", "unsquashfs", "mksquashfs", "tar"], { root: true })) return;
  const { layout } = await threeLayerImage(t);
  const base = only(await unpacked(t, layout, "v1"), "usr");
  const image = only(await unpacked(t, layout, "v3"), "usr");
  const expected: Listing = new Map();
  for (const [p, v] of image) {
    if (base.get(p) === v) continue;
    const parts = p.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      expected.set(parent, image.get(parent)!);
    }
    expected.set(p, v);
  }
  const { listing } = await builtListing(t, {
    source: `oci-layout:${layout}:v3`,
    base: `oci-layout:${layout}:v1`,
  });
  // usr/lib is unchanged from the base; it is there only as the release file's parent.
  assert.equal(listing.get("usr/lib"), base.get("usr/lib"));
  listing.delete("usr/lib");
  assert.deepEqual(new Map([...listing].sort()), new Map([...expected].sort()));
  assert.ok(listing.has("usr/bin/gone") && !listing.has("usr/share/keep/a"));
  assert.ok(!listing.has("usr/lib/libx.so.1"), "unchanged files of the base are left out");
});

test("--layers last (the default) takes the last layer only, without its whiteout markers", async (t) => {
  if (!requirePeers(t, ["umoci", "unsquashfs", "mksquashfs", "tar"], { root: true })) return;
  const { layout } = await threeLayerImage(t);
  const { listing } = await builtListing(t, { source: `oci-layout:${layout}:v3` });
  const files = [...listing]
    .filter(([, v]) => !v.startsWith("dir"))
    .map(([p]) => p)
    .sort();
  assert.deepEqual(files, [
    "usr/bin/gone",
    "usr/share/keep/b",
    "usr/share/keep/b-link",
    "usr/share/opq/new",
  ]);
});

test("tar, tar.gz and tar.zst rootfs archives build the same tree as the directory", async (t) => {
  if (!requirePeers(t, ["tar", "zstd", "unsquashfs", "mksquashfs"], { root: true })) return;
  const work = await tempDir(t);
  const src = path.join(work, "src");
  await write(src, "usr/bin/a", "a\n", 0o755);
  await write(src, "usr/share/b/c", "c\n");
  await symlink("/usr/bin/a", path.join(src, "usr/bin/abs"));
  await write(src, "var/dropped", "x\n");
  const fromDir = (await builtListing(t, { source: src })).listing;
  for (const [name, flag] of [
    ["r.tar", []],
    ["r.tar.gz", ["-z"]],
    ["r.tar.zst", ["--zstd"]],
  ] as const) {
    const file = path.join(work, name);
    run("tar", ["-c", ...flag, "-f", file, "-C", src, "."]);
    assert.deepEqual((await builtListing(t, { source: file })).listing, fromDir, name);
  }
});

test("oci://REF from a real registry builds the same tree as the local layout, and a --base over it", async (t) => {
  if (
    !requirePeers(t, ["umoci", "skopeo", "docker-registry", "unsquashfs", "mksquashfs", "tar"], {
      root: true,
    })
  )
    return;
  const { layout } = await threeLayerImage(t);
  const registry = await startRegistry(t);
  for (const tag of ["v1", "v3"]) {
    run("skopeo", [
      "copy",
      "--dest-tls-verify=false",
      `oci:${layout}:${tag}`,
      `docker://${registry.host}/exts/tool:${tag}`,
    ]);
  }
  const insecureRegistries = [registry.host];
  const local = await builtListing(t, { source: `oci-layout:${layout}:v3`, layers: "all" });
  const remote = await builtListing(t, {
    source: `oci://${registry.host}/exts/tool:v3`,
    layers: "all",
    insecureRegistries,
  });
  assert.deepEqual(remote.listing, local.listing);
  const localBase = await builtListing(t, {
    source: `oci-layout:${layout}:v3`,
    base: `oci-layout:${layout}:v1`,
  });
  const remoteBase = await builtListing(t, {
    source: `oci://${registry.host}/exts/tool:v3`,
    base: `oci://${registry.host}/exts/tool:v1`,
    insecureRegistries,
  });
  assert.deepEqual(remoteBase.listing, localBase.listing);
  const last = await builtListing(t, {
    source: `oci://${registry.host}/exts/tool:v3`,
    insecureRegistries,
  });
  assert.ok(last.listing.has("usr/share/opq/new") && !last.listing.has("usr/bin/tool"));
});
