// A Kairos OS image in miniature for --include tests and the README walkthrough: a base layer
// (os-release, a shell, /etc, other firmware, merged-/usr symlinks) and a later layer adding the
// NVIDIA firmware, pushed to a real registry with skopeo.
import { randomBytes } from "node:crypto";
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

/** Pushes the image to `dest` (HOST/REPO:TAG) on a plain-http registry. */
export async function pushOsImage(t: TestContext, dest: string): Promise<void> {
  const layout = await makeLayout(t, [
    {
      layers: [
        {
          files: [
            { name: "usr/lib/os-release", data: 'ID=debian\nVERSION_ID="12"\n' },
            file("usr/bin/bash", 1_000),
            { name: "etc/hostname", data: "kairos\n" },
            file("usr/lib/firmware/amdgpu/navi10_pfp.bin", 2_000),
            { name: "lib", type: "symlink", linkname: "usr/lib" },
          ],
        },
        {
          compression: "zstd",
          files: [
            ...Object.entries(NVIDIA_FIRMWARE).map(([name, size]) => file(name, size)),
            file("usr/lib/firmware/nvidia-uncompressed.txt", 10),
            file("usr/share/doc/nvidia/README", 20),
          ],
        },
      ],
    },
  ]);
  pushLayout(layout, dest);
}
