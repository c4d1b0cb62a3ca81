// squashfs as the filesystem registry knows it: its magic, its reader (loaded on first use) and
// how mksquashfs makes one reproducibly.
import { ExtctlError } from "../../../util/errors.js";
import type { ByteSource } from "../../../util/bytes.js";
import type { FilesystemDescriptor, MkfsInput } from "../filesystem-registry.js";
import type { ImageFilesystem } from "../tree.js";

const COMPRESSORS = new Set(["none", "gzip", "lzo", "lz4", "xz", "zstd", "lzma"]);

function mksquashfsCommand(input: MkfsInput): { args: string[]; env: Record<string, string> } {
  const [algorithm, level] = input.compress.split(",");
  if (!COMPRESSORS.has(algorithm ?? "")) {
    throw new ExtctlError("usage", `mksquashfs cannot compress with "${input.compress}"`, {
      hint: "use --compress gzip, lzo, lz4, xz, zstd, lzma or none",
    });
  }
  const args = [input.stagingDir, input.output, "-noappend", "-quiet", "-no-progress"];
  args.push("-mkfs-time", String(input.epoch));
  if (algorithm === "none") args.push("-noI", "-noD", "-noF", "-noX");
  else {
    args.push("-comp", algorithm ?? "gzip");
    if (level !== undefined) args.push("-Xcompression-level", level);
  }
  if (!input.keepOwners) args.push("-all-root");
  // mksquashfs refuses SOURCE_DATE_EPOCH next to -mkfs-time, so it gets none.
  return { args, env: {} };
}

export const squashfs = {
  name: "squashfs",
  async detect(source: ByteSource) {
    return (await source.readAt(0, 4)).toString("latin1") === "hsqs";
  },
  async open(source: ByteSource): Promise<ImageFilesystem> {
    return (await import("./reader.js")).openSquashfs(source);
  },
  async checkSuperblock(source: ByteSource) {
    await (await import("./reader.js")).readSquashfsSuperblock(source);
  },
  mkfs: {
    program: "mksquashfs",
    defaultCompress: "gzip",
    compressHelp: "gzip|xz|zstd|lz4|lzo|none",
    missingHint: "install squashfs-tools",
    command: mksquashfsCommand,
  },
} as const satisfies FilesystemDescriptor;
