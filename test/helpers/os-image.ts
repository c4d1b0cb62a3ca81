// A Kairos OS image in miniature for --include tests and the README walkthrough: a base layer
// (os-release, a shell, /etc, other firmware, merged-/usr symlinks) and a later layer adding the
// NVIDIA firmware, as an OCI layout, pushed to a real registry, or written out as a directory.
import { randomBytes } from "node:crypto";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import type { TestContext } from "node:test";
import { makeLayout, pushLayout, type LayerFile } from "./registry.js";

/** The files under usr/lib/firmware/nvidia and their sizes. */
export const NVIDIA_FIRMWARE: Readonly<Record<string, number>> = {
  "usr/lib/firmware/nvidia/gsp_tu10x.bin": 300_001,
  "usr/lib/firmware/nvidia/tu102/acr/ucode_load.bin": 4_097,
  "usr/lib/firmware/nvidia/tu102/gr/sw_ctx.bin": 17,
  "usr/lib/firmware/nvidia/ga102/sec2/desc.bin": 65_536,
};

function file(name: string, size: number): LayerFile {
  return { name, data: randomBytes(size) };
}

/** Made once per process, so every form of the image holds the same bytes. */
const LAYERS: LayerFile[][] = [
  [
    { name: "usr/lib/os-release", data: 'ID=debian\nVERSION_ID="12"\n' },
    file("usr/bin/bash", 1_000),
    { name: "etc/hostname", data: "kairos\n" },
    file("usr/lib/firmware/amdgpu/navi10_pfp.bin", 2_000),
    { name: "lib", type: "symlink", linkname: "usr/lib" },
  ],
  [
    ...Object.entries(NVIDIA_FIRMWARE).map(([name, size]) => file(name, size)),
    file("usr/lib/firmware/nvidia-uncompressed.txt", 10),
    file("usr/share/doc/nvidia/README", 20),
  ],
];

/** The image as an OCI layout (tag "test"); the firmware layer is zstd-compressed. */
export function makeOsLayout(t: TestContext): Promise<string> {
  return makeLayout(t, [
    { layers: [{ files: LAYERS[0]! }, { files: LAYERS[1]!, compression: "zstd" }] },
  ]);
}

/** Pushes the image to `dest` (HOST/REPO:TAG) on a plain-http registry. */
export async function pushOsImage(t: TestContext, dest: string): Promise<void> {
  pushLayout(await makeOsLayout(t), dest);
}

/** The image's filesystem, as a container runtime unpacks it, under `dir`. */
export async function writeOsTree(dir: string): Promise<void> {
  for (const f of LAYERS.flat()) {
    const target = path.join(dir, f.name);
    await mkdir(path.dirname(target), { recursive: true });
    if (f.type === "symlink") await symlink(f.linkname ?? "", target);
    else await writeFile(target, f.data ?? "");
  }
}
