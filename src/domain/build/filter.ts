// Keeps what an extension may carry (sysext: usr/, and opt/ when asked; confext: etc/), refuses
// what systemd or the kernel would misuse, and normalises owners and times for reproducibility.
import type { ExtensionKind } from "../store/layout.js";
import { ExtctlError } from "../../util/errors.js";
import { FileTree, symlinkStaysInside, type BuildEntry } from "./tree.js";

export interface FilterOptions {
  kind: ExtensionKind;
  withOpt?: boolean;
  keepOwners?: boolean;
  /** Latest modification time allowed (SOURCE_DATE_EPOCH); later times are clamped to it. */
  clampMtime?: number;
}

export interface FilterResult {
  tree: FileTree;
  /** Entries dropped, per top-level name. */
  dropped: Map<string, number>;
  /** One line for people, or undefined when nothing was dropped. */
  summary: string | undefined;
}

export function keptTopLevels(kind: ExtensionKind, withOpt = false): string[] {
  if (kind === "confext") return ["etc"];
  return withOpt ? ["usr", "opt"] : ["usr"];
}

const SPECIAL: ReadonlySet<BuildEntry["type"]> = new Set(["char", "block", "fifo", "socket"]);

export function filterTree(source: FileTree, options: FilterOptions): FilterResult {
  const keep = new Set(keptTopLevels(options.kind, options.withOpt));
  const out = new FileTree();
  const dropped = new Map<string, number>();
  for (const entry of source.sorted()) {
    const top = entry.path.split("/", 1)[0] ?? "";
    if (!keep.has(top)) {
      dropped.set(top, (dropped.get(top) ?? 0) + 1);
      continue;
    }
    if (SPECIAL.has(entry.type)) {
      const what = entry.type === "char" || entry.type === "block" ? "device node" : entry.type;
      throw new ExtctlError(
        "build",
        `the source holds the ${what} ${entry.path}, which an extension image may not carry`,
        {
          hint: "remove it from the source tree",
        },
      );
    }
    if (entry.type === "symlink" && !symlinkStaysInside(entry.path, entry.linkTarget ?? "")) {
      throw new ExtctlError(
        "build",
        `the symlink ${entry.path} -> ${entry.linkTarget} points outside the image`,
        { hint: "make it absolute (/usr/...) or point it inside the tree" },
      );
    }
    const kept: BuildEntry = { ...entry };
    if (!options.keepOwners) {
      kept.uid = 0;
      kept.gid = 0;
    }
    if (options.clampMtime !== undefined && kept.mtime > options.clampMtime) {
      kept.mtime = options.clampMtime;
    }
    out.set(kept);
  }
  for (const entry of out.entries()) {
    if (entry.type === "hardlink" && !out.has(entry.hardlinkTarget ?? "")) {
      // The other name lies outside what we keep: this one becomes the file.
      entry.type = "file";
      delete entry.hardlinkTarget;
    }
  }
  if (options.kind === "sysext" && out.has("usr/lib/os-release")) {
    throw new ExtctlError(
      "build",
      "the source holds usr/lib/os-release, and systemd-sysext refuses images that carry one",
      { hint: "remove usr/lib/os-release from the source (the release file is written by extctl)" },
    );
  }
  if (![...out.entries()].some((e) => e.type !== "dir")) {
    throw new ExtctlError(
      "build",
      `nothing to build: the source has no files under ${[...keep].map((k) => `${k}/`).join(" or ")}`,
      {
        hint: `put the extension's files under ${[...keep].map((k) => `/${k}`).join(" or ")} in the source`,
      },
    );
  }
  const total = [...dropped.values()].reduce((a, b) => a + b, 0);
  const summary =
    total === 0
      ? undefined
      : `dropped ${total} ${total === 1 ? "entry" : "entries"} outside ${[...keep].map((k) => `${k}/`).join(" and ")}: ` +
        [...dropped.entries()]
          .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
          .map(([top, n]) => `${top} (${n})`)
          .join(", ");
  return { tree: out, dropped, summary };
}

/** The newest mtime in a tree: the default build time when SOURCE_DATE_EPOCH is unset. */
export function newestMtime(tree: FileTree): number {
  let newest = 0;
  for (const e of tree.entries()) newest = Math.max(newest, e.mtime);
  return newest;
}
