// `extctl inspect IMAGE --cat PATH`: one file's bytes out of an image, without mounting it, the
// way `unsquashfs -cat` does. Streams block by block with backpressure; never the whole file.
import { once } from "node:events";
import path from "node:path";
import type { Writable } from "node:stream";
import type { Context } from "../util/context.js";
import { ExtctlError } from "../util/errors.js";
import { openImage } from "../domain/image/image.js";
import { lookup, type TreeEntry } from "../domain/image/tree.js";
import { dissectingSystemd } from "../domain/image/host.js";

export interface CatResult {
  /** The path asked for and, when it was a symlink, the path inside the image it led to. */
  path: string;
  resolved: string;
  size: number;
  bytesWritten: number;
}

function notFound(inner: string, why: string): ExtctlError {
  return new ExtctlError("not-found", `${inner} ${why} in the image`, {
    hint: "list the image's files with `extctl inspect IMAGE --files`",
  });
}

/**
 * Finds the regular file at `inner`. Symlinks are followed inside the image only: an absolute
 * target starts again at the image's root and ".." stops there, so nothing outside is reached.
 */
async function findFile(
  fs: Awaited<ReturnType<typeof openImage>>["fs"],
  inner: string,
): Promise<TreeEntry> {
  const entry = await lookup(fs, inner);
  if (!entry) throw notFound(inner, "does not exist");
  let target = entry;
  if (entry.type === "symlink") {
    const followed = await lookup(fs, inner, { follow: true });
    if (!followed)
      throw notFound(
        inner,
        `is a symbolic link to ${JSON.stringify(entry.target ?? "")}, which does not exist`,
      );
    target = followed;
  }
  if (target.type === "dir")
    throw new ExtctlError("usage", `${inner} is a directory in the image, not a file`, {
      hint: "--cat writes one regular file; list a directory with --files",
    });
  if (target.type !== "file")
    throw new ExtctlError("usage", `${inner} is a ${target.type} in the image, not a file`);
  return target;
}

async function writeAll(out: Writable, chunk: Buffer): Promise<void> {
  if (out.write(chunk)) return;
  // Wait for the reader of stdout; an error (EPIPE when it went away) ends the copy.
  await Promise.race([
    once(out, "drain"),
    once(out, "error").then(([e]) => {
      throw e;
    }),
  ]);
}

export interface CatOptions {
  /** The image file (a host path). */
  image: string;
  /** The file inside the image, e.g. /usr/bin/hello. */
  path: string;
  /** Where its bytes go (stdout for `inspect --cat`). */
  out: Writable;
}

export async function catImageFile(ctx: Context, options: CatOptions): Promise<CatResult> {
  const { image: imagePath, path: inner, out } = options;
  if (inner === "")
    throw new ExtctlError("usage", "--cat needs a path inside the image, e.g. /usr/bin/hello");
  const image = await openImage(path.resolve(imagePath), {
    systemd: await dissectingSystemd(ctx.root),
  });
  try {
    const entry = await findFile(image.fs, inner);
    let written = 0;
    for await (const chunk of image.fs.read(entry)) {
      written += chunk.length;
      // A reader bug or a crafted image must not turn a small file into an endless stream.
      if (written > entry.size)
        throw new ExtctlError("format", `${entry.path} in the image is larger than it claims`);
      await writeAll(out, chunk);
    }
    if (written !== entry.size)
      throw new ExtctlError(
        "format",
        `${entry.path} in the image ends after ${written} of its ${entry.size} bytes`,
      );
    ctx.log.debug(`wrote ${written} bytes of ${entry.path}; read ${image.file.bytesRead} bytes`);
    return { path: inner, resolved: entry.path, size: entry.size, bytesWritten: written };
  } finally {
    await image.close();
  }
}
