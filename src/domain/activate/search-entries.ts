// What systemd-sysext (or -confext) finds in its search dirs, as its image_discover does, per
// systemd version: images (NAME.raw), directory extensions (a plain directory), and from 256 on
// version directories (NAME.raw.v/, systemd.v) with the version systemd picks in each. The first
// entry of a name in search order is the one systemd takes; a later one is masked by it.
import { readdir, stat } from "node:fs/promises";
import type { Root } from "../../util/root.js";
import type { ExtensionKind } from "../store/layout.js";
import { imageName } from "../image/compat.js";
import { hostArchitecture, secondaryArchitecture } from "../image/partition-types.js";
import { hasFeature } from "../image/systemd-versions.js";
import {
  FIRST_VPICK_SYSTEMD,
  pickVersion,
  versionedDir,
  type VersionPick,
} from "../image/vpick.js";

/** systemd's search order for image names (spec/formats.md section 1; discover-image.c). */
export function searchDirs(kind: ExtensionKind, systemd: number): string[] {
  if (kind === "confext")
    return ["/run/confexts", "/var/lib/confexts", "/usr/local/lib/confexts", "/usr/lib/confexts"];
  const dirs = ["/etc/extensions", "/run/extensions", "/var/lib/extensions"];
  if (systemd < 254) dirs.push("/usr/local/lib/extensions", "/usr/lib/extensions");
  return dirs;
}

export interface SearchEntry {
  /** The image name systemd gives it. */
  name: string;
  /** Node path of the entry in its search dir. */
  path: string;
  /** The search dir it is in. */
  dir: string;
  type: "image" | "directory" | "versioned";
  /** A directory with nothing in it (the documented way to mask a name). */
  empty?: boolean;
  /** type versioned: the entry systemd picks (node path) and its version. */
  picked?: VersionPick & { path: string };
  /** systemd skips it (neither merges nor masks): why. */
  skipped?: string;
}

/** The name systemd gives directory `dirName` (no .raw to cut; 255+ cut .sysext/.confext). */
export function directoryName(dirName: string, kind: ExtensionKind, systemd: number): string {
  return hasFeature(systemd, "stripKindSuffix") && dirName.endsWith(`.${kind}`)
    ? dirName.slice(0, -(kind.length + 1))
    : dirName;
}

/** `hostPath` comes from root.readPath: links are resolved inside the root, as systemd does. */
async function kindOf(hostPath: string): Promise<"file" | "dir" | "other" | undefined> {
  const st = await stat(hostPath).catch(() => undefined);
  if (!st) return undefined;
  return st.isDirectory() ? "dir" : st.isFile() || st.isBlockDevice() ? "file" : "other";
}

/**
 * How systemd 256+ reads the version directory at `path` named `dirName`; `resolve` turns a path
 * in the caller's terms (a node path: root.readPath) into a host path.
 */
export async function readVersionedDir(
  resolve: (p: string) => Promise<string>,
  path: string,
  dirName: string,
  kind: ExtensionKind,
): Promise<Pick<SearchEntry, "name" | "picked" | "skipped">> {
  const vd = versionedDir(dirName, kind);
  if (!vd) return { name: dirName, skipped: `${dirName} is not a name systemd.v reads` };
  const names = await readdir(await resolve(path)).catch(() => [] as string[]);
  const native = hostArchitecture();
  const pick = pickVersion(names, vd, native, secondaryArchitecture(native));
  const want = vd.suffix === "" ? "directories" : `files ${vd.name}_VERSION${vd.suffix}`;
  if (!pick)
    return {
      name: vd.name,
      skipped: `${path} holds no ${want} for this architecture: systemd skips it`,
    };
  const picked = { ...pick, path: `${path}/${pick.file}` };
  const type = await kindOf(await resolve(picked.path).catch(() => ""));
  if (type !== vd.wants)
    return {
      name: vd.name,
      picked,
      skipped: `systemd picks ${pick.file} in ${path}, which is not a ${vd.wants === "file" ? "file" : "directory"}, and skips the directory`,
    };
  return { name: vd.name, picked };
}

/** Every entry of the search dirs, in systemd's order (within a dir by name). */
export async function searchEntries(
  root: Root,
  kind: ExtensionKind,
  systemd: number,
  options: { before?: string; directoriesOnly?: boolean } = {},
): Promise<SearchEntry[]> {
  const out: SearchEntry[] = [];
  for (const dir of searchDirs(kind, systemd)) {
    if (dir === options.before) break;
    let dirents;
    try {
      dirents = await readdir(await root.readPath(dir), { withFileTypes: true });
    } catch {
      continue;
    }
    for (const dirent of dirents.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const fileName = dirent.name;
      if (fileName.startsWith(".")) continue;
      // Only directories wanted (list): a file, or a link named like an image (extctl's own in
      // /run), costs no path walk.
      if (
        options.directoriesOnly &&
        (dirent.isFile() || (dirent.isSymbolicLink() && fileName.endsWith(".raw")))
      )
        continue;
      const path = `${dir}/${fileName}`;
      const entryHost = await root.readPath(path).catch(() => undefined);
      const type = entryHost === undefined ? undefined : await kindOf(entryHost);
      if (type === "file") {
        if (!fileName.endsWith(".raw")) continue;
        out.push({ name: imageName(fileName, kind, systemd), path, dir, type: "image" });
        continue;
      }
      if (type !== "dir") continue;
      if (systemd >= FIRST_VPICK_SYSTEMD && fileName.endsWith(".v")) {
        out.push({
          path,
          dir,
          type: "versioned",
          ...(await readVersionedDir((p) => root.readPath(p), path, fileName, kind)),
        });
        continue;
      }
      const inside = await readdir(entryHost as string).catch(() => [] as string[]);
      out.push({
        name: directoryName(fileName, kind, systemd),
        path,
        dir,
        type: "directory",
        ...(inside.length === 0 ? { empty: true } : {}),
      });
    }
  }
  return out;
}
