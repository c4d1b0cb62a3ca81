// erofs as the filesystem registry knows it: its magic, its reader (loaded on first use) and how
// mkfs.erofs makes one reproducibly; build's default format.
import { ExtctlError } from "../../../util/errors.js";
import type { ByteSource } from "../../../util/bytes.js";
import type { FilesystemDescriptor, MkfsInput } from "../filesystem-registry.js";
import type { ImageFilesystem } from "../tree.js";

const COMPRESSORS = new Set(["none", "lz4", "lz4hc"]);

function mkfsErofsCommand(input: MkfsInput): { args: string[]; env: Record<string, string> } {
  const [algorithm] = input.compress.split(",");
  if (!COMPRESSORS.has(algorithm ?? "")) {
    throw new ExtctlError("usage", `mkfs.erofs cannot compress with "${input.compress}"`, {
      hint: "use --compress none, lz4 or lz4hc[,LEVEL]",
    });
  }
  const args = ["--quiet", "-U", input.uuid];
  if (algorithm !== "none") args.push(`-z${input.compress}`);
  if (!input.keepOwners) args.push("--all-root");
  args.push(input.output, input.stagingDir);
  // erofs-utils clamps file times to SOURCE_DATE_EPOCH and uses it as the build time.
  return { args, env: { SOURCE_DATE_EPOCH: String(input.epoch) } };
}

export const erofs = {
  name: "erofs",
  async detect(source: ByteSource) {
    if (source.size < 1028) return false;
    const magic = await source.readAt(1024, 4);
    return magic.length === 4 && magic.readUInt32LE(0) === 0xe0f5e1e2;
  },
  async open(source: ByteSource): Promise<ImageFilesystem> {
    return (await import("./reader.js")).openErofs(source);
  },
  async checkSuperblock(source: ByteSource) {
    await (await import("./reader.js")).readErofsSuperblock(source);
  },
  mkfs: {
    program: "mkfs.erofs",
    defaultCompress: "lz4hc",
    compressHelp: "none|lz4|lz4hc[,LEVEL]",
    missingHint: "install erofs-utils, or use --format squashfs",
    isDefault: true,
    command: mkfsErofsCommand,
  },
} as const satisfies FilesystemDescriptor;
