// `build --include PATH...`: keeps only the given subtrees of a source (e.g. an OS image's
// usr/lib/firmware/nvidia), so a part of the OS can move into an extension and out of the UKI.
import { ExtctlError } from "../../util/errors.js";
import { FileTree, parentsOf } from "./tree.js";

/** What an extension carries from its source: the bytes an OS image can drop by shipping it. */
export interface CarriedContent {
  /** Regular files, each inode once (a hardlink to a kept file adds no bytes). */
  files: number;
  bytes: number;
}

/** Top-level names that are symlinks into /usr on a merged-/usr OS (every Kairos flavour). */
const MERGED_INTO_USR: ReadonlySet<string> = new Set([
  "bin",
  "sbin",
  "lib",
  "lib32",
  "lib64",
  "libx32",
]);

/**
 * Checks and normalises --include paths: relative to the image root, inside what the extension
 * keeps (`kept`: usr, opt, etc), no "..". Refused rather than repaired, because a path that
 * means something else than it says would build the wrong image silently.
 */
export function checkIncludePaths(raw: readonly string[], kept: readonly string[]): string[] {
  const out: string[] = [];
  for (const given of raw) {
    if (given.startsWith("/")) {
      throw new ExtctlError("usage", `--include ${given} is absolute`, {
        hint: `give it relative to the image root: --include ${given.replace(/^\/+/, "")}`,
      });
    }
    const parts = given.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.includes("..")) {
      throw new ExtctlError("usage", `--include ${given} climbs out of the tree with ".."`, {
        hint: "give the subtree's path from the image root, without ..",
      });
    }
    if (parts.length === 0) {
      throw new ExtctlError("usage", `--include "${given}" names no path`, {
        hint: "give a subtree such as usr/lib/firmware/nvidia",
      });
    }
    const normalised = parts.join("/");
    const top = parts[0] ?? "";
    if (!kept.includes(top)) {
      const hint =
        top === "opt"
          ? "add --with-opt to carry /opt"
          : MERGED_INTO_USR.has(top) && kept.includes("usr")
            ? `on a merged-/usr OS /${top} is /usr/${top}: --include usr/${normalised}`
            : undefined;
      throw new ExtctlError(
        "usage",
        `--include ${given} lies outside ${kept.map((k) => `${k}/`).join(" and ")}, which this extension carries`,
        hint === undefined ? {} : { hint },
      );
    }
    if (!out.includes(normalised)) out.push(normalised);
  }
  return out;
}

function under(p: string, subtree: string): boolean {
  return p === subtree || p.startsWith(`${subtree}/`);
}

/** Why nothing matched `subtree`: a symlinked parent (merged /usr: lib -> usr/lib) says where to look. */
function noMatch(tree: FileTree, subtree: string, lastLayerOnly: boolean): ExtctlError {
  for (const parent of parentsOf(subtree)) {
    const entry = tree.get(parent);
    if (entry?.type === "symlink") {
      return new ExtctlError(
        "build",
        `--include ${subtree} matches nothing in the source: ${parent} is a symlink to ${entry.linkTarget}`,
        { hint: "give the path the symlink points to" },
      );
    }
  }
  return new ExtctlError("build", `--include ${subtree} matches nothing in the source`, {
    hint: lastLayerOnly
      ? "only the image's last layer was read: add --layers all to look in the whole image"
      : "check the path against the image (paths are relative to its root, e.g. usr/lib/firmware)",
  });
}

/**
 * The entries under the given subtrees, plus their parents as directories (the source's own
 * entry when it has one, so modes survive; 0755 otherwise). Each subtree must match something;
 * `lastLayerOnly` says the tree is one layer of an image, the likely reason when one does not.
 */
export function includeSubtrees(
  source: FileTree,
  subtrees: readonly string[],
  options: { lastLayerOnly?: boolean } = {},
): FileTree {
  const out = new FileTree();
  // A tar may list a directory's files without the directory itself: a match is any entry
  // at or below the path.
  const matched = new Set<string>();
  for (const entry of source.sorted()) {
    const hits = subtrees.filter((s) => under(entry.path, s));
    if (hits.length === 0) continue;
    for (const s of hits) matched.add(s);
    out.set({ ...entry });
  }
  const missing = subtrees.find((s) => !matched.has(s));
  if (missing !== undefined) throw noMatch(source, missing, options.lastLayerOnly ?? false);
  for (const entry of [...out.entries()]) {
    for (const parent of parentsOf(entry.path)) {
      if (out.get(parent)?.type === "dir") continue;
      const own = source.get(parent);
      out.set(
        own?.type === "dir"
          ? { ...own }
          : { path: parent, type: "dir", mode: 0o755, uid: 0, gid: 0, mtime: entry.mtime, size: 0 },
      );
    }
  }
  return out;
}

/** Files and bytes of a tree's regular files (hardlinks to them are the same bytes). */
export function carriedContent(tree: FileTree): CarriedContent {
  const carried: CarriedContent = { files: 0, bytes: 0 };
  for (const entry of tree.entries()) {
    if (entry.type !== "file") continue;
    carried.files++;
    carried.bytes += entry.size;
  }
  return carried;
}
