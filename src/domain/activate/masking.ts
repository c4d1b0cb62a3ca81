// systemd's masking of an image extctl links into /run: systemd-sysext takes, per image name,
// the first entry in its search order, so an entry of the same name in an earlier directory
// (/etc/extensions) hides ours. An empty directory there is the documented way to mask; it
// merges nothing (seen on 252, 257 and 262: `systemd-sysext list` shows the directory).
import type { Root } from "../../util/root.js";
import type { ExtensionKind } from "../store/layout.js";
import { imageName } from "../image/compat.js";
import { searchEntries } from "./search-entries.js";

export { searchDirs } from "./search-entries.js";

export interface Mask {
  /** Node path of the entry systemd takes instead. */
  path: string;
  /** "empty-directory" merges nothing; the others are another extension of that name. */
  by: "empty-directory" | "directory" | "image";
}

/**
 * Every entry systemd takes before the runtime dir, by the name systemd gives it (the first in
 * search order wins): what masks an image of that name linked in `runtimeDir`. A version
 * directory (256+) masks by the version it picks; one systemd skips masks nothing.
 */
export async function masksBefore(
  root: Root,
  kind: ExtensionKind,
  systemd: number,
  runtimeDir: string,
): Promise<Map<string, Mask>> {
  const masks = new Map<string, Mask>();
  for (const e of await searchEntries(root, kind, systemd, { before: runtimeDir })) {
    if (e.skipped !== undefined || masks.has(e.name)) continue;
    masks.set(e.name, {
      path: e.picked?.path ?? e.path,
      by: e.type === "directory" ? (e.empty ? "empty-directory" : "directory") : "image",
    });
  }
  return masks;
}

/** What masks the image linked in the runtime dir as `linkName`, or undefined. */
export async function maskOf(
  root: Root,
  kind: ExtensionKind,
  systemd: number,
  runtimeDir: string,
  linkName: string,
): Promise<Mask | undefined> {
  const masks = await masksBefore(root, kind, systemd, runtimeDir);
  return masks.get(imageName(linkName, kind, systemd));
}

/** "masked by /etc/extensions/tool (an empty directory)": the reason list, status and check give. */
export function describeMask(mask: Mask): string {
  return `masked by ${mask.path} (${
    mask.by === "empty-directory"
      ? "an empty directory: systemd merges nothing under that name"
      : mask.by === "directory"
        ? "a directory extension of the same name, which systemd takes instead"
        : "an image of the same name, which systemd takes instead"
  })`;
}
