// Makes the read-only filesystem of an image with the real mkfs.erofs or mksquashfs, run through
// ctx.runner with fixed UUIDs and times, so equal staging trees give equal bytes.
import type { Context } from "../../util/context.js";
import { ExtctlError, errnoCode } from "../../util/errors.js";
import { lastErrorLine } from "../../util/runner.js";

export type FilesystemFormat = "erofs" | "squashfs";

export const FORMATS: readonly FilesystemFormat[] = ["erofs", "squashfs"];

export interface MkfsOptions {
  format: FilesystemFormat;
  /** erofs: none, lz4, lz4hc[,LEVEL]; squashfs: gzip, lzo, lz4, xz, zstd, lzma, none. */
  compress?: string;
  stagingDir: string;
  output: string;
  /** Build time and latest file time (SOURCE_DATE_EPOCH). */
  epoch: number;
  /** Filesystem UUID (erofs; squashfs has none). */
  uuid: string;
  keepOwners?: boolean;
}

export const DEFAULT_COMPRESS: Readonly<Record<FilesystemFormat, string>> = {
  erofs: "lz4hc",
  squashfs: "gzip",
};

const EROFS_COMPRESSORS = new Set(["none", "lz4", "lz4hc"]);
const SQUASHFS_COMPRESSORS = new Set(["none", "gzip", "lzo", "lz4", "xz", "zstd", "lzma"]);

/** The argv for the mkfs program, without running it. */
export function mkfsCommand(options: MkfsOptions): {
  program: string;
  args: string[];
  env: Record<string, string>;
} {
  const compress = options.compress ?? DEFAULT_COMPRESS[options.format];
  const [algorithm, level] = compress.split(",");
  if (options.format === "erofs") {
    if (!EROFS_COMPRESSORS.has(algorithm ?? "")) {
      throw new ExtctlError("usage", `mkfs.erofs cannot compress with "${compress}"`, {
        hint: "use --compress none, lz4 or lz4hc[,LEVEL]",
      });
    }
    const args = ["--quiet", "-U", options.uuid];
    if (algorithm !== "none") args.push(`-z${compress}`);
    if (!options.keepOwners) args.push("--all-root");
    args.push(options.output, options.stagingDir);
    // erofs-utils clamps file times to SOURCE_DATE_EPOCH and uses it as the build time.
    return { program: "mkfs.erofs", args, env: { SOURCE_DATE_EPOCH: String(options.epoch) } };
  }
  if (!SQUASHFS_COMPRESSORS.has(algorithm ?? "")) {
    throw new ExtctlError("usage", `mksquashfs cannot compress with "${compress}"`, {
      hint: "use --compress gzip, lzo, lz4, xz, zstd, lzma or none",
    });
  }
  const args = [options.stagingDir, options.output, "-noappend", "-quiet", "-no-progress"];
  args.push("-mkfs-time", String(options.epoch));
  if (algorithm === "none") args.push("-noI", "-noD", "-noF", "-noX");
  else {
    args.push("-comp", algorithm ?? "gzip");
    if (level !== undefined) args.push("-Xcompression-level", level);
  }
  if (!options.keepOwners) args.push("-all-root");
  return { program: "mksquashfs", args, env: {} };
}

export async function makeFilesystem(ctx: Context, options: MkfsOptions): Promise<void> {
  const { program, args, env } = mkfsCommand(options);
  let result;
  try {
    // mksquashfs refuses SOURCE_DATE_EPOCH next to -mkfs-time; each tool gets only what it reads.
    const { SOURCE_DATE_EPOCH: _ignored, ...inherited } = ctx.env;
    result = await ctx.runner.run(program, args, { env: { ...inherited, ...env } });
  } catch (e) {
    if (errnoCode(e) === "ENOENT") {
      throw new ExtctlError("build", `${program} is not installed`, {
        hint:
          options.format === "erofs"
            ? "install erofs-utils, or use --format squashfs"
            : "install squashfs-tools",
      });
    }
    throw e;
  }
  if (result.exitCode !== 0) {
    throw new ExtctlError("build", `${program} failed: ${lastErrorLine(result)}`, {
      hint: "run with -v to see the command line",
    });
  }
}
