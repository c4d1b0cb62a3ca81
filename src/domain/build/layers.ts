// Image layers applied onto a build tree in order the way OCI runtimes do: whiteouts (as
// oci/whiteout.ts reads them) delete what lower layers left, and later entries replace earlier.
import { ExtctlError } from "../../util/errors.js";
import { hides, isWhiteout, whiteoutOf } from "../oci/whiteout.js";
import { FileTree, parentsOf, type BuildEntry } from "./tree.js";

export interface LayerStats {
  deleted: number;
  opaque: number;
}

function ensureParents(tree: FileTree, entry: BuildEntry, describe: string): void {
  for (const parent of parentsOf(entry.path)) {
    const existing = tree.get(parent);
    if (existing === undefined) {
      tree.set({
        path: parent,
        type: "dir",
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: entry.mtime,
        size: 0,
      });
    } else if (existing.type !== "dir") {
      // Following a symlinked parent is how hostile archives write outside the tree.
      throw new ExtctlError(
        "build",
        `${describe} puts ${entry.path} under ${parent}, which is a ${existing.type}, not a directory`,
        { hint: "fix the image so that parents of files are directories" },
      );
    }
  }
}

/** Follows hardlink chains to the regular file that carries the bytes. */
function linkRoot(tree: FileTree, target: string, describe: string, from: string): BuildEntry {
  let entry = tree.get(target);
  for (let hops = 0; entry?.type === "hardlink" && hops < 64; hops++) {
    entry = entry.hardlinkTarget === undefined ? undefined : tree.get(entry.hardlinkTarget);
  }
  if (entry === undefined || entry.type !== "file") {
    throw new ExtctlError(
      "build",
      `${describe} holds a hardlink ${from} to ${target}, which is not a regular file before it`,
      { hint: "rebuild the archive so hardlink targets come first" },
    );
  }
  return entry;
}

/**
 * Applies one layer's entries (in archive order) onto `tree`. Whiteouts act on what lower
 * layers left, never on this layer's own entries, whatever their order in the archive.
 */
export function applyLayer(
  tree: FileTree,
  entries: readonly BuildEntry[],
  describe: string,
): LayerStats {
  const stats: LayerStats = { deleted: 0, opaque: 0 };
  for (const e of entries) {
    const whiteout = whiteoutOf(e.path);
    if (whiteout?.kind === "opaque") {
      const { dir } = whiteout;
      if (tree.get(dir)?.type === "dir" || dir === "") {
        for (const child of tree.entries()) if (hides(whiteout, child.path)) stats.opaque++;
        tree.removeChildren(dir);
      }
    } else if (whiteout?.kind === "remove") {
      if (tree.has(whiteout.path)) stats.deleted++;
      tree.remove(whiteout.path);
    }
  }
  for (const e of entries) {
    if (isWhiteout(e.path)) continue;
    ensureParents(tree, e, describe);
    const old = tree.get(e.path);
    if (e.type === "dir" && old?.type === "dir") {
      // A directory entry in an upper layer changes metadata, not contents.
      tree.set({ ...e });
    } else if (e.type === "hardlink") {
      const root = linkRoot(tree, e.hardlinkTarget ?? "", describe, e.path);
      // The link shares the bytes the target has now, even if a later layer replaces the target.
      tree.set({
        ...root,
        path: e.path,
        type: "hardlink",
        hardlinkTarget: root.path,
        ...(root.content ? { content: root.content } : {}),
      });
    } else {
      tree.set({ ...e });
    }
  }
  return stats;
}

export function applyLayers(
  layers: readonly { entries: readonly BuildEntry[]; describe: string }[],
): {
  tree: FileTree;
  stats: LayerStats;
} {
  const tree = new FileTree();
  const stats: LayerStats = { deleted: 0, opaque: 0 };
  for (const layer of layers) {
    const s = applyLayer(tree, layer.entries, layer.describe);
    stats.deleted += s.deleted;
    stats.opaque += s.opaque;
  }
  return { tree, stats };
}

/** Counts the whiteouts in one layer (what `--layers last` cannot express). */
export function countWhiteouts(entries: readonly BuildEntry[]): number {
  return entries.filter((e) => isWhiteout(e.path)).length;
}

function sameEntry(a: BuildEntry, b: BuildEntry): boolean {
  return (
    a.type === b.type &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.size === b.size &&
    a.linkTarget === b.linkTarget &&
    a.hardlinkTarget === b.hardlinkTarget
  );
}

function sameContent(a: BuildEntry, b: BuildEntry): boolean {
  if (a.content === undefined || b.content === undefined) return a.content === b.content;
  if (a.content.kind === "layer" && b.content.kind === "layer") {
    return a.content.layer === b.content.layer && a.content.ordinal === b.content.ordinal;
  }
  return false;
}

/**
 * What `image` adds over `base`: entries that are new, differ in metadata, or whose bytes come
 * from a layer the base does not share (`sharedLayers` = length of the common layer prefix).
 * Parents of kept entries are kept so the tree stays whole.
 */
export function diffOverBase(image: FileTree, base: FileTree, sharedLayers: number): FileTree {
  const out = new FileTree();
  for (const e of image.sorted()) {
    const b = base.get(e.path);
    const fromNewLayer = e.content?.kind === "layer" && e.content.layer >= sharedLayers;
    if (b !== undefined && sameEntry(e, b) && !fromNewLayer && sameContent(e, b)) continue;
    if (b !== undefined && b.type === "dir" && e.type === "dir" && sameEntry(e, b)) continue;
    for (const parent of parentsOf(e.path)) {
      if (!out.has(parent)) {
        const p = image.get(parent);
        if (p) out.set(p);
      }
    }
    out.set(e);
  }
  return out;
}
