// Materialises a filtered tree in a temp staging directory for mkfs.erofs / mksquashfs: bytes are
// copied (host files) or streamed out of layer archives (one pass per layer), never held whole.
import { createWriteStream } from "node:fs";
import {
  chmod,
  copyFile,
  lchown,
  link,
  lutimes,
  mkdir,
  symlink,
  utimes,
  writeFile,
  constants,
} from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { ExtctlError, fsError } from "../../util/errors.js";
import type { Progress } from "../../util/progress.js";
import { inParallel } from "./parallel.js";
import { copyVerifiedHostFile } from "./sources/host-file.js";
import { walkArchive, type LayerArchive } from "./sources/tar.js";
import type { FileTree, BuildEntry } from "./tree.js";

export interface StageOptions {
  /** Layer archives that `{kind: "layer"}` content refers to, by index. */
  layers?: readonly LayerArchive[];
  keepOwners?: boolean;
  /** mtime of the image's root directory. */
  rootMtime?: number;
  progress?: Progress;
}

export interface StageResult {
  files: number;
  bytes: number;
}

/** Filesystem calls in flight at once: small files are bound by round trips, not bandwidth. */
const CONCURRENCY = 16;

function isLinkedToKeptFile(tree: FileTree, e: BuildEntry): boolean {
  if (e.type !== "hardlink" || e.hardlinkTarget === undefined) return false;
  const target = tree.get(e.hardlinkTarget);
  return target !== undefined && (target.type === "file" || target.type === "hardlink");
}

export async function stageTree(
  tree: FileTree,
  stagingDir: string,
  options: StageOptions = {},
): Promise<StageResult> {
  const entries = tree.sorted();
  const host = (e: BuildEntry) => path.join(stagingDir, ...e.path.split("/"));
  const result: StageResult = { files: 0, bytes: 0 };
  try {
    for (const e of entries) {
      if (e.type === "dir") await mkdir(host(e), { mode: 0o700 });
    }
    // Bytes that come out of layers, grouped so each layer is streamed once.
    const fromLayers = new Map<number, Map<number, BuildEntry[]>>();
    const links = new Set<BuildEntry>();
    const direct: BuildEntry[] = [];
    for (const e of entries) {
      if (e.type === "hardlink" && isLinkedToKeptFile(tree, e)) {
        links.add(e);
        continue;
      }
      if (e.type !== "file" && e.type !== "hardlink") continue;
      const content = e.content;
      if (content === undefined) throw new ExtctlError("internal", `no content for ${e.path}`);
      result.files++;
      result.bytes += e.size;
      if (content.kind === "layer") {
        let byOrdinal = fromLayers.get(content.layer);
        if (!byOrdinal)
          fromLayers.set(content.layer, (byOrdinal = new Map<number, BuildEntry[]>()));
        const list = byOrdinal.get(content.ordinal) ?? [];
        list.push(e);
        byOrdinal.set(content.ordinal, list);
      } else {
        direct.push(e);
      }
    }
    await inParallel(direct, CONCURRENCY, async (e) => {
      const content = e.content!;
      if (content.kind === "host")
        await copyVerifiedHostFile(content.path, { ...content, size: e.size }, host(e));
      else if (content.kind === "inline") await writeFile(host(e), content.data, { flag: "wx" });
      options.progress?.tick(e.size);
    });
    for (const [layer, byOrdinal] of [...fromLayers.entries()].sort((a, b) => a[0] - b[0])) {
      const archive = options.layers?.[layer];
      if (!archive) throw new ExtctlError("internal", `layer ${layer} is missing for staging`);
      let remaining = byOrdinal.size;
      await walkArchive(archive, async (_header, ordinal, body) => {
        const targets = byOrdinal.get(ordinal);
        if (!targets || targets.length === 0) return;
        const [first, ...others] = targets as [BuildEntry, ...BuildEntry[]];
        await pipeline(body, createWriteStream(host(first), { flags: "wx" }));
        for (const other of others)
          await copyFile(host(first), host(other), constants.COPYFILE_EXCL);
        options.progress?.tick(first.size * targets.length);
        remaining--;
      });
      if (remaining !== 0) {
        throw new ExtctlError("build", `${archive.describe} changed while it was read`, {
          hint: "build again from a source that is not being modified",
        });
      }
    }
    await inParallel([...links], CONCURRENCY, (e) =>
      link(host(tree.get(e.hardlinkTarget ?? "")!), host(e)),
    );
    await inParallel(
      entries.filter((e) => e.type === "symlink"),
      CONCURRENCY,
      (e) => symlink(e.linkTarget ?? "", host(e)),
    );
    // Metadata last, once every child exists: adding entries would bump a directory's mtime.
    // Setting one directory's times never touches its parent's, so order does not matter.
    await inParallel(
      entries.filter((e) => !links.has(e)),
      CONCURRENCY,
      async (e) => {
        const p = host(e);
        if (options.keepOwners) await lchown(p, e.uid, e.gid);
        if (e.type === "symlink") {
          await lutimes(p, e.mtime, e.mtime);
        } else {
          // copyFile already carried a host file's mode over (setuid bits included), unless
          // lchown above just cleared setuid and setgid.
          const modeCopied = e.content?.kind === "host" && e.type !== "dir" && !options.keepOwners;
          if (!modeCopied) await chmod(p, e.mode);
          await utimes(p, e.mtime, e.mtime);
        }
      },
    );
    await chmod(stagingDir, 0o755);
    if (options.rootMtime !== undefined)
      await utimes(stagingDir, options.rootMtime, options.rootMtime);
  } catch (e) {
    if (e instanceof ExtctlError) throw e;
    throw fsError(e, `stage the tree in ${stagingDir}`);
  }
  return result;
}
