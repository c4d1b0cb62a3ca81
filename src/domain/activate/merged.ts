// What systemd has merged right now: each hierarchy's `.systemd-sysext/extensions` or
// `.systemd-confext/confexts` (one image
// name a line) and the directory's mtime, the "since" time. Read from disk, never from the exit
// code of systemd-sysext, which can succeed without merging (spec/kairos.md "ours" 6).
import { stat } from "node:fs/promises";
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

export async function readMerged(root: Root, kind: ExtensionKind): Promise<MergedHierarchy[]> {
  const result: MergedHierarchy[] = [];
  for (const hierarchy of LAYOUTS[kind].hierarchies) {
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
