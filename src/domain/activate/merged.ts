// What systemd has merged right now: each hierarchy's `.systemd-sysext/extensions` or
// `.systemd-confext/confexts` (one image
// name a line) and the directory's mtime, the "since" time. Read from disk, never from the exit
// code of systemd-sysext, which can succeed without merging (spec/kairos.md "ours" 6).
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { READ_CAPS, readBounded } from "../../util/bounded-read.js";
import type { Root } from "../../util/root.js";
import { LAYOUTS, type ExtensionKind } from "../store/layout.js";

export interface MergedHierarchy {
  hierarchy: string;
  extensions: string[];
  since?: string;
}

function markerDir(kind: ExtensionKind): string {
  return kind === "sysext" ? ".systemd-sysext" : ".systemd-confext";
}

/**
 * The list's file name: systemd names it after the image class, `extensions` for sysext and
 * `confexts` for confext (seen in systemd 257 and 262: /etc/.systemd-confext/confexts).
 */
function markerFile(kind: ExtensionKind): string {
  return kind === "sysext" ? "extensions" : "confexts";
}

const HIERARCHIES_VARIABLE: Readonly<Record<ExtensionKind, string>> = {
  sysext: "SYSTEMD_SYSEXT_HIERARCHIES",
  confext: "SYSTEMD_CONFEXT_HIERARCHIES",
};

/**
 * Every hierarchy systemd may have merged: the kind's defaults, the list in
 * $SYSTEMD_SYSEXT_HIERARCHIES / $SYSTEMD_CONFEXT_HIERARCHIES when extctl itself runs with it, and
 * each default's direct subdirectories. The last is what a booted node looks like:
 * systemd-sysext.service runs with its drop-in's hierarchy list (Kairos's, and
 * `extctl systemd install`'s, names /usr's subdirs one by one so /usr/local stays writable), so
 * systemd writes /usr/bin/.systemd-sysext/extensions and so on and nothing in /usr itself, while
 * extctl, not started by that unit, never sees the variable.
 */
async function candidateHierarchies(
  root: Root,
  kind: ExtensionKind,
  env: NodeJS.ProcessEnv,
): Promise<string[]> {
  const defaults = LAYOUTS[kind].hierarchies;
  const more = new Set<string>();
  for (const entry of env[HIERARCHIES_VARIABLE[kind]]?.split(":") ?? []) {
    if (entry.startsWith("/")) more.add(path.posix.normalize(entry));
  }
  for (const hierarchy of defaults) {
    try {
      const entries = await readdir(await root.readPath(hierarchy), { withFileTypes: true });
      for (const e of entries)
        if (e.isDirectory() && !e.name.startsWith(".")) more.add(`${hierarchy}/${e.name}`);
    } catch {
      // No such hierarchy on this node.
    }
  }
  for (const d of defaults) more.delete(d);
  return [...defaults, ...[...more].sort()];
}

/**
 * What is merged, per hierarchy holding a marker. `env` is the environment systemd-sysext would
 * run with here (its hierarchy variables), default none.
 */
export async function readMerged(
  root: Root,
  kind: ExtensionKind,
  env: NodeJS.ProcessEnv = {},
): Promise<MergedHierarchy[]> {
  const result: MergedHierarchy[] = [];
  for (const hierarchy of await candidateHierarchies(root, kind, env)) {
    try {
      const dir = await root.readPath(`${hierarchy}/${markerDir(kind)}`);
      const [text, st] = await Promise.all([
        // Bounded: a FIFO or device planted as the marker must not hang a listing.
        readBounded(`${dir}/${markerFile(kind)}`, { cap: READ_CAPS.config }).then((b) =>
          b.toString("utf8"),
        ),
        stat(dir),
      ]);
      const extensions = text
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean);
      result.push({ hierarchy, extensions, since: st.mtime.toISOString() });
    } catch {
      // Not merged (or the hierarchy does not exist): nothing to report for it.
    }
  }
  return result;
}

/** All image names merged into any hierarchy of this kind. */
export function mergedNames(hierarchies: readonly MergedHierarchy[]): Set<string> {
  return new Set(hierarchies.flatMap((h) => h.extensions));
}

/**
 * The names systemd may give an image file: without `.raw`, and from 255 on also without
 * `.sysext` / `.confext` (252 keeps them: foo.sysext.raw merges as "foo.sysext").
 */
export function systemdNames(fileName: string): string[] {
  const base = fileName.endsWith(".raw") ? fileName.slice(0, -4) : fileName;
  const names = [base];
  for (const suffix of [".sysext", ".confext"]) {
    if (base.endsWith(suffix) && base.length > suffix.length)
      names.push(base.slice(0, -suffix.length));
  }
  return names;
}

export function isMerged(fileName: string, merged: ReadonlySet<string>): boolean {
  return systemdNames(fileName).some((n) => merged.has(n));
}
