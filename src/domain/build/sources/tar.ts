// Tar archives as build sources and image layers (plain, gzip or zstd, told apart by their
// magic bytes): one streaming pass lists the entries, a later pass copies only wanted bytes.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { PassThrough, Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Header } from "tar-stream";
import { ExtctlError, fsError, messageOf } from "../../../util/errors.js";
import {
  MAGIC_BYTES,
  layerDecompressor,
  sniffCompression,
  type LayerCompression,
} from "../../oci/layer.js";
import { treePath, type BuildEntryType, type BuildEntry } from "../tree.js";

/** A tar archive, or a byte range of a file holding one (a blob inside an outer tar). */
export interface LayerArchive {
  /** For messages: "layer 2 (sha256:ab12...)" or a file name. */
  describe: string;
  path: string;
  start: number;
  length: number;
  /** "sha256:<hex>" of the stored (compressed) bytes, checked while they pass. */
  digest?: string;
}

export async function archiveOfFile(file: string): Promise<LayerArchive> {
  try {
    const handle = await open(file, "r");
    try {
      const st = await handle.stat();
      if (!st.isFile()) {
        throw new ExtctlError("build", `the source ${file} is not a regular file`);
      }
      return { describe: file, path: file, start: 0, length: st.size };
    } finally {
      await handle.close();
    }
  } catch (e) {
    throw fsError(e, `open the source archive ${file}`);
  }
}

export async function detectCompression(archive: LayerArchive): Promise<LayerCompression> {
  const handle = await open(archive.path, "r");
  try {
    const magic = Buffer.alloc(Math.min(MAGIC_BYTES, archive.length));
    const { bytesRead } = await handle.read(magic, 0, magic.length, archive.start);
    return sniffCompression(magic.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

function rawStream(archive: LayerArchive): Readable {
  if (archive.length === 0) {
    const empty = new PassThrough();
    empty.end();
    return empty;
  }
  return createReadStream(archive.path, {
    start: archive.start,
    end: archive.start + archive.length - 1,
    highWaterMark: 1 << 20,
  });
}

function digestChecker(archive: LayerArchive): Transform & { check(): void } {
  const [algorithm, expected] = (archive.digest ?? "").split(":");
  const hash = algorithm === "sha256" ? createHash("sha256") : undefined;
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash?.update(chunk);
      cb(null, chunk);
    },
  }) as Transform & { check(): void };
  t.check = () => {
    if (hash === undefined) return;
    const actual = hash.digest("hex");
    if (actual !== expected) {
      throw new ExtctlError(
        "checksum",
        `${archive.describe} does not match its digest (got sha256:${actual})`,
        { hint: "the image layout is damaged; export or pull the image again" },
      );
    }
  };
  return t;
}

function entryType(header: Header): BuildEntryType | undefined {
  switch (header.type) {
    case "file":
    case "contiguous-file":
      return "file";
    case "directory":
      return "dir";
    case "symlink":
      return "symlink";
    case "link":
      return "hardlink";
    case "character-device":
      return "char";
    case "block-device":
      return "block";
    case "fifo":
      return "fifo";
    default:
      return undefined;
  }
}

/**
 * Streams an archive once and calls `onEntry` for each member in order, with the member's
 * ordinal (its position among members) and its byte stream, which the callback must consume
 * or leave (then it is skipped).
 */
export async function walkArchive(
  archive: LayerArchive,
  onEntry: (header: Header, ordinal: number, body: AsyncIterable<Buffer>) => Promise<void>,
): Promise<void> {
  const tar = await import("tar-stream");
  const compression = await detectCompression(archive);
  const extract = tar.extract();
  const checker = digestChecker(archive);
  const feeding = pipeline(
    rawStream(archive),
    checker,
    await layerDecompressor(compression),
    extract,
  );
  let failure: unknown;
  feeding.catch((e: unknown) => {
    failure ??= e;
  });
  let ordinal = 0;
  try {
    for await (const entry of extract) {
      await onEntry(entry.header, ordinal++, entry as unknown as AsyncIterable<Buffer>);
      entry.resume();
    }
    await feeding;
  } catch (e) {
    extract.destroy();
    failure ??= e;
  }
  if (failure !== undefined) {
    if (failure instanceof ExtctlError) throw failure;
    const detail = messageOf(failure);
    throw new ExtctlError("build", `cannot read ${archive.describe} as a tar archive: ${detail}`, {
      cause: failure,
      hint: "give a tar, tar.gz or tar.zst archive, a directory or an OCI image",
    });
  }
  checker.check();
}

/**
 * Lists an archive as tree entries in archive order, including whiteout markers (layers.ts
 * interprets them). Regular files point back at (layer, ordinal) for staging.
 */
export async function readArchiveEntries(
  archive: LayerArchive,
  layer: number,
): Promise<BuildEntry[]> {
  const out: BuildEntry[] = [];
  await walkArchive(archive, async (header, ordinal) => {
    const type = entryType(header);
    if (type === undefined) return;
    const p = treePath(header.name, archive.describe);
    if (p === "") return;
    const entry: BuildEntry = {
      path: p,
      type,
      mode: (header.mode ?? 0o644) & 0o7777,
      uid: header.uid ?? 0,
      gid: header.gid ?? 0,
      mtime: Math.floor((header.mtime?.getTime() ?? 0) / 1000),
      size: 0,
    };
    if (type === "file") {
      entry.size = header.size ?? 0;
      entry.content = { kind: "layer", layer, ordinal };
    } else if (type === "symlink") {
      entry.linkTarget = header.linkname ?? "";
    } else if (type === "hardlink") {
      entry.hardlinkTarget = treePath(header.linkname ?? "", archive.describe);
    }
    out.push(entry);
  });
  return out;
}
