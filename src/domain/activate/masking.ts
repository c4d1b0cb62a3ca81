// systemd's masking of an image extctl links into /run: systemd-sysext takes, per image name,
// the first entry in its search order, so an entry of the same name in an earlier directory
// (/etc/extensions) hides ours. An empty directory there is the documented way to mask; it
// merges nothing (seen on 252, 257 and 262: `systemd-sysext list` shows the directory).
import { readdir } from "node:fs/promises";
import type { Root } from "../../util/root.js";
import type { ExtensionKind } from "../store/layout.js";
import { imageName } from "../image/compat.js";

/** systemd's search order for image names (spec/formats.md section 1). */
export function searchDirs(kind: ExtensionKind, systemd: number): string[] {
  if (kind === "confext")
    return ["/run/confexts", "/var/lib/confexts", "/usr/local/lib/confexts", "/usr/lib/confexts"];
  const dirs = ["/etc/extensions", "/run/extensions", "/var/lib/extensions"];
  if (systemd < 254) dirs.push("/usr/local/lib/extensions", "/usr/lib/extensions");
  return dirs;
}

export interface Mask {
  /** Node path of the entry systemd takes instead. */
  path: string;
  /** "empty-directory" merges nothing; the others are another extension of that name. */
  by: "empty-directory" | "directory" | "image";
}

/** The name systemd gives a directory entry of a search dir, or undefined when it skips it. */
function entryName(
  name: string,
  isDir: boolean,
  kind: ExtensionKind,
  systemd: number,
): string | undefined {
  if (name.startsWith(".")) return undefined;
  if (isDir) {
    // systemd.v (256+): NAME.raw.v/ holds versions of NAME; older ones take it as a directory.
    if (systemd >= 256 && name.endsWith(".raw.v"))
      return imageName(name.slice(0, -2), kind, systemd);
    return name;
  }
  return name.endsWith(".raw") ? imageName(name, kind, systemd) : undefined;
}

/**
 * Every entry systemd takes before the runtime dir, by the name systemd gives it (the first in
 * search order wins): what masks an image of that name linked in `runtimeDir`.
 */
export async function masksBefore(
  root: Root,
  kind: ExtensionKind,
  systemd: number,
  runtimeDir: string,
): Promise<Map<string, Mask>> {
  const masks = new Map<string, Mask>();
  for (const dir of searchDirs(kind, systemd)) {
    if (dir === runtimeDir) break;
    let entries;
    try {
      entries = await readdir(await root.readPath(dir), { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const isDir = e.isDirectory();
      const name = entryName(e.name, isDir, kind, systemd);
      if (name === undefined || masks.has(name)) continue;
      const path = `${dir}/${e.name}`;
      if (!isDir) {
        masks.set(name, { path, by: "image" });
        continue;
      }
      const inside = await readdir(await root.readPath(path)).catch(() => [] as string[]);
      masks.set(name, { path, by: inside.length === 0 ? "empty-directory" : "directory" });
    }
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
