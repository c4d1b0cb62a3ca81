// Finds an extension image's release file the way systemd-sysext does: the exact
// extension-release.NAME, else the single fallback: one marked non-strict by xattr or (256+)
// extension-release.BASE where BASE is NAME cut at its first "_" or "+".
import { ExtctlError } from "../../util/errors.js";
import type { ExtensionKind } from "../store/layout.js";
import { parseBoolean, parseOsRelease, type ReleaseFields } from "./os-release.js";
import { lookup, readSmallFile, type ImageFilesystem, type TreeEntry } from "./tree.js";

const MAX_RELEASE_FILE = 64 * 1024;
export const STRICT_XATTR = "user.extension-release.strict";

export function releaseDirOf(kind: ExtensionKind): string {
  return kind === "confext" ? "/etc/extension-release.d" : "/usr/lib/extension-release.d";
}

export type ReleaseLookup =
  | { found: "exact" | "fallback" | "base"; path: string; fields: ReleaseFields; text: string }
  | { found: "none"; reason: string; candidates: string[] }
  | { found: "ambiguous"; reason: string; candidates: string[] };

async function readRelease(
  fs: ImageFilesystem,
  entry: TreeEntry,
): Promise<{ text: string; fields: ReleaseFields }> {
  const text = (await readSmallFile(fs, entry, MAX_RELEASE_FILE)).toString("utf8");
  return { text, fields: parseOsRelease(text) };
}

/** NAME_1.2 and NAME+k3s -> NAME: systemd's path_extract_image_name cut. */
export function baseImageName(name: string): string {
  const cut = name.search(/[_+]/);
  return cut < 0 ? name : name.slice(0, cut);
}

export interface FindReleaseOptions {
  /** systemd 256+: extension-release.BASE serves NAME_VERSION and NAME+SUFFIX. */
  versionedNameFallback?: boolean;
}

/** Looks up the release file for image name `name` inside a filesystem. */
export async function findReleaseFile(
  fs: ImageFilesystem,
  name: string,
  kind: ExtensionKind,
  options: FindReleaseOptions = {},
): Promise<ReleaseLookup> {
  const dir = releaseDirOf(kind);
  const exactPath = `${dir}/extension-release.${name}`;
  const exact = await lookup(fs, exactPath, { follow: true });
  if (exact?.type === "file")
    return { found: "exact", path: exactPath, ...(await readRelease(fs, exact)) };

  const dirEntry = await lookup(fs, dir, { follow: true });
  if (!dirEntry || dirEntry.type !== "dir")
    return { found: "none", reason: `the image has no ${dir.slice(1)} directory`, candidates: [] };
  const candidates = (await fs.list(dirEntry)).filter(
    (e) => e.name.startsWith("extension-release.") && e.type === "file",
  );
  // systemd takes every candidate the fallback admits and refuses the image when there are two.
  const base = options.versionedNameFallback ? baseImageName(name) : undefined;
  const relaxed: { entry: TreeEntry; how: "fallback" | "base" }[] = [];
  for (const c of candidates) {
    if (base !== undefined && c.name === `extension-release.${base}`) {
      relaxed.push({ entry: c, how: "base" });
      continue;
    }
    const value = (await fs.xattrs(c))[STRICT_XATTR];
    if (value !== undefined && parseBoolean(value.toString("utf8").replace(/\0+$/, "")) === false)
      relaxed.push({ entry: c, how: "fallback" });
  }
  const names = candidates.map((c) => c.name);
  if (relaxed.length === 1) {
    const only = relaxed[0] as { entry: TreeEntry; how: "fallback" | "base" };
    return { found: only.how, path: only.entry.path, ...(await readRelease(fs, only.entry)) };
  }
  if (relaxed.length > 1)
    return {
      found: "ambiguous",
      reason: `${relaxed.length} release files could serve "${name}" (${relaxed.map((r) => r.entry.name).join(", ")}), systemd needs exactly one`,
      candidates: names,
    };
  return {
    found: "none",
    reason:
      names.length === 0
        ? `no extension-release.${name} in ${dir.slice(1)}`
        : `no extension-release.${name} in ${dir.slice(1)} (found ${names.join(", ")}, none marked ${STRICT_XATTR}=false${base !== undefined && base !== name ? ` or named extension-release.${base}` : ""})`,
    candidates: names,
  };
}

/** Throws a clear error for a lookup that found nothing usable. */
export function requireRelease(
  result: ReleaseLookup,
  name: string,
): Extract<ReleaseLookup, { fields: ReleaseFields }> {
  if (result.found === "exact" || result.found === "fallback" || result.found === "base")
    return result;
  throw new ExtctlError(
    "incompatible",
    `the image has no usable release file for the name "${name}": ${"reason" in result ? result.reason : "not found"}`,
    {
      hint: `add ${"usr/lib/extension-release.d/extension-release." + name} to the image`,
    },
  );
}
