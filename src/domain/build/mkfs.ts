// Makes the read-only filesystem of an image with the real mkfs of the format (from the filesystem
// registry), run through ctx.runner with fixed UUIDs and times, so equal staging trees give equal bytes.
import type { Context } from "../../util/context.js";
import { ExtctlError, errnoCode } from "../../util/errors.js";
import { lastErrorLine } from "../../util/runner.js";
import {
  DEFAULT_FORMAT,
  FORMATS,
  mkfsOf,
  nameList,
  type FilesystemFormat,
  type MkfsDescriptor,
} from "../image/filesystem-registry.js";

export { FORMATS, type FilesystemFormat };

export interface MkfsOptions {
  format: FilesystemFormat;
  /** The format's compressor (DEFAULT_COMPRESS when absent); each mkfs checks its own. */
  compress?: string;
  stagingDir: string;
  output: string;
  /** Build time and latest file time (SOURCE_DATE_EPOCH). */
  epoch: number;
  /** Filesystem UUID (erofs; squashfs has none). */
  uuid: string;
  keepOwners?: boolean;
}

export const DEFAULT_COMPRESS: Readonly<Record<FilesystemFormat, string>> = Object.fromEntries(
  FORMATS.map((f) => [f, (mkfsOf(f) as MkfsDescriptor).defaultCompress]),
) as Record<FilesystemFormat, string>;

/** The format build makes: `format` when it is one build knows, the default when absent. */
export function buildFormat(format: string | undefined): FilesystemFormat {
  const chosen = format ?? DEFAULT_FORMAT;
  if (!(FORMATS as readonly string[]).includes(chosen)) {
    throw new ExtctlError("usage", `unknown filesystem format "${String(chosen)}"`, {
      hint: `use --format ${nameList(FORMATS)}`,
    });
  }
  return chosen as FilesystemFormat;
}

function mkfsFor(format: string): MkfsDescriptor {
  return mkfsOf(buildFormat(format)) as MkfsDescriptor;
}

/** The argv for the mkfs program, without running it. */
export function mkfsCommand(options: MkfsOptions): {
  program: string;
  args: string[];
  env: Record<string, string>;
} {
  const mkfs = mkfsFor(options.format);
  const { args, env } = mkfs.command({
    compress: options.compress ?? mkfs.defaultCompress,
    stagingDir: options.stagingDir,
    output: options.output,
    epoch: options.epoch,
    uuid: options.uuid,
    ...(options.keepOwners === undefined ? {} : { keepOwners: options.keepOwners }),
  });
  return { program: mkfs.program, args, env };
}

export async function makeFilesystem(ctx: Context, options: MkfsOptions): Promise<void> {
  const { program, args, env } = mkfsCommand(options);
  let result;
  try {
    // Each tool gets only the SOURCE_DATE_EPOCH its mkfs asks for (mksquashfs refuses one).
    const { SOURCE_DATE_EPOCH: _ignored, ...inherited } = ctx.env;
    result = await ctx.runner.run(program, args, { env: { ...inherited, ...env } });
  } catch (e) {
    if (errnoCode(e) === "ENOENT") {
      throw new ExtctlError("build", `${program} is not installed`, {
        hint: mkfsFor(options.format).missingHint,
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
