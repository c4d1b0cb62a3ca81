// `build --include` from an OS image in a real registry (docker-registry, pushed by skopeo): the
// image made by the real mkfs.erofs / mksquashfs holds only the included subtree (read back by
// extctl inspect and by unsquashfs), and the bytes printed are the bytes of its files; a
// directory, a rootfs tar and an oci-layout source give the same image.
import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { runExtctl } from "../helpers/cli.js";
import { requirePeers, run } from "../helpers/peers.js";
import { NVIDIA_FIRMWARE, makeOsLayout, pushOsImage, writeOsTree } from "../helpers/os-image.js";
import { startRegistry } from "../helpers/registry.js";
import { tempDir } from "../helpers/tmp.js";

const FIRMWARE = NVIDIA_FIRMWARE;

/** The OS image in a fresh registry. */
async function osImageInRegistry(t: TestContext): Promise<{ host: string; ref: string }> {
  const registry = await startRegistry(t);
  await pushOsImage(t, `${registry.host}/kairos/os:v1`);
  return { host: registry.host, ref: `oci://${registry.host}/kairos/os:v1` };
}

interface Built {
  path: string;
  include: string[];
  carried: { files: number; bytes: number };
}

interface Inspected {
  files: { path: string; type: string; size: number }[];
}

const RELEASE = "/usr/lib/extension-release.d/extension-release.nvidia-firmware";

for (const format of ["erofs", "squashfs"] as const) {
  test(`--include from oci:// (${format}): only the subtree is in the image, and the bytes printed are its files' sizes`, async (t) => {
    const mkfs = format === "erofs" ? "mkfs.erofs" : "mksquashfs";
    if (!requirePeers(t, ["docker-registry", "skopeo", mkfs, "unsquashfs"], { root: true })) return;
    const { host, ref } = await osImageInRegistry(t);
    const out = await tempDir(t);
    const built = await runExtctl([
      "build",
      "sysext",
      "nvidia-firmware",
      ref,
      "--layers",
      "all",
      "--include",
      "usr/lib/firmware/nvidia",
      "--format",
      format,
      "--insecure-registry",
      host,
      "--output",
      out,
      "--json",
    ]);
    assert.equal(built.code, 0, built.stderr);
    const result = JSON.parse(built.stdout) as Built;
    assert.deepEqual(result.include, ["usr/lib/firmware/nvidia"]);
    const expectedBytes = Object.values(FIRMWARE).reduce((a, b) => a + b, 0);
    assert.deepEqual(result.carried, { files: 4, bytes: expectedBytes });
    assert.match(
      built.stderr,
      new RegExp(`the extension carries 4 files \\(.+\\) of ${ref} that the OS image can drop`),
    );

    const inspected = await runExtctl(["inspect", "--files", "--json", result.path]);
    assert.equal(inspected.code, 0, inspected.stderr);
    const files = (JSON.parse(inspected.stdout) as Inspected).files;
    const regular = files.filter((f) => f.type === "file" && f.path !== RELEASE);
    assert.deepEqual(regular.map((f) => f.path.slice(1)).sort(), Object.keys(FIRMWARE).sort());
    assert.equal(
      regular.reduce((sum, f) => sum + f.size, 0),
      result.carried.bytes,
    );
    // Nothing else: only the subtree, its parents and the release file.
    for (const f of files) {
      const p = f.path;
      const allowed =
        p === "/" ||
        ["/usr", "/usr/lib", "/usr/lib/firmware"].includes(p) ||
        p.startsWith("/usr/lib/firmware/nvidia/") ||
        p === "/usr/lib/firmware/nvidia" ||
        p.startsWith("/usr/lib/extension-release.d");
      assert.ok(allowed, `${p} is not under the included subtree`);
    }

    // The human table says the same in exact bytes.
    const table = await runExtctl([
      "build",
      "sysext",
      "nvidia-firmware",
      ref,
      "--layers",
      "all",
      "--include",
      "usr/lib/firmware/nvidia",
      "--format",
      format,
      "--insecure-registry",
      host,
      "--output",
      await tempDir(t),
    ]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`^carries +4 files, ${expectedBytes} bytes `, "m"));
    assert.match(table.stdout, /^included +usr\/lib\/firmware\/nvidia$/m);

    if (format === "squashfs") {
      // A second reader: squashfs-tools' own listing of the filesystem partition's content.
      const bare = await runExtctl([
        "build",
        "sysext",
        "nvidia-firmware",
        ref,
        "--layers",
        "all",
        "--include",
        "usr/lib/firmware/nvidia",
        "--format",
        "squashfs",
        "--no-verity",
        "--insecure-registry",
        host,
        "--output",
        await tempDir(t),
        "--json",
      ]);
      assert.equal(bare.code, 0, bare.stderr);
      const listing = run("unsquashfs", [
        "-lls",
        "-no-xattrs",
        (JSON.parse(bare.stdout) as Built).path,
      ]);
      const listed = listing
        .split("\n")
        .filter((l) => l.startsWith("-"))
        .map((l) => {
          const fields = l.trim().split(/\s+/);
          return { size: Number(fields[2]), path: fields.slice(5).join(" ") };
        })
        .filter((f) => !f.path.includes("extension-release.d"));
      assert.deepEqual(
        listed.map((f) => f.path.replace(/^squashfs-root\//, "")).sort(),
        Object.keys(FIRMWARE).sort(),
      );
      assert.equal(
        listed.reduce((sum, f) => sum + f.size, 0),
        expectedBytes,
      );
    }
  });
}

test("--include of a path the OS image does not have fails naming it and leaves nothing", async (t) => {
  if (!requirePeers(t, ["docker-registry", "skopeo", "mkfs.erofs"], { root: true })) return;
  const { host, ref } = await osImageInRegistry(t);
  const out = await tempDir(t);
  const r = await runExtctl([
    "build",
    "sysext",
    "fw",
    ref,
    "--layers",
    "all",
    "--include",
    "usr/lib/firmware/nvidia",
    "--include",
    "usr/lib/firmware/intel",
    "--insecure-registry",
    host,
    "--output",
    out,
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /--include usr\/lib\/firmware\/intel matches nothing in the source/);
  const merged = await runExtctl([
    "build",
    "sysext",
    "fw",
    ref,
    "--layers",
    "all",
    "--include",
    "lib/firmware",
    "--insecure-registry",
    host,
    "--output",
    out,
  ]);
  assert.equal(merged.code, 2, merged.stderr);
  assert.match(
    merged.stderr,
    /on a merged-\/usr OS \/lib is \/usr\/lib: --include usr\/lib\/firmware/,
  );
  // Without --layers all only the last layer is read, and the hint says so.
  const lastLayer = await runExtctl([
    "build",
    "sysext",
    "fw",
    ref,
    "--include",
    "usr/lib/firmware/amdgpu",
    "--insecure-registry",
    host,
    "--output",
    out,
  ]);
  assert.equal(lastLayer.code, 1, lastLayer.stderr);
  assert.match(lastLayer.stderr, /add --layers all to look in the whole image/);
  assert.deepEqual(await readdir(out), [], "no image, no temp files");
  const absolute = await runExtctl(["build", "sysext", "fw", ref, "--include", "/usr/lib"]);
  assert.equal(absolute.code, 2, absolute.stderr);
  assert.match(absolute.stderr, /--include \/usr\/lib is absolute/);
});

test("--include works the same on a directory, a rootfs tar and an oci-layout source", async (t) => {
  if (!requirePeers(t, ["tar", "mksquashfs", "unsquashfs"], { root: true })) return;
  const layout = await makeOsLayout(t);
  const rootfs = path.join(await tempDir(t), "rootfs");
  await writeOsTree(rootfs);
  const tarball = path.join(await tempDir(t), "rootfs.tar");
  run("tar", ["-cf", tarball, "-C", rootfs, "."]);
  const sources = [rootfs, tarball, `oci-layout:${layout}:test`];
  const listings: string[] = [];
  for (const source of sources) {
    const out = await tempDir(t);
    const args = ["build", "sysext", "fw", source, "--include", "usr/lib/firmware/nvidia"];
    if (source.startsWith("oci-layout:")) args.push("--layers", "all");
    args.push("--format", "squashfs", "--no-verity", "--output", out, "--json");
    const built = await runExtctl(args);
    assert.equal(built.code, 0, `${source}: ${built.stderr}`);
    const result = JSON.parse(built.stdout) as Built;
    assert.deepEqual(result.carried, {
      files: 4,
      bytes: Object.values(FIRMWARE).reduce((a, b) => a + b, 0),
    });
    const listing = run("unsquashfs", ["-l", "-no-xattrs", result.path])
      .split("\n")
      .filter((l) => l.startsWith("squashfs-root/") && !l.includes("extension-release"))
      .sort();
    listings.push(listing.join("\n"));
    assert.ok(!listing.some((l) => l.includes("os-release") || l.includes("amdgpu")), source);
    assert.ok(listing.includes("squashfs-root/usr/lib/firmware/nvidia/gsp_tu10x.bin"), source);
  }
  assert.equal(listings[1], listings[0], "tar and directory agree");
  assert.equal(listings[2], listings[0], "oci-layout and directory agree");
});
