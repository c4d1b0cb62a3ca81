// Finds an extension image's release file the way systemd-sysext does: the exact
// extension-release.NAME, else the single extension-release.* marked non-strict by xattr.
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
  | { found: "exact" | "fallback"; path: string; fields: ReleaseFields; text: string }
  | { found: "none"; reason: string; candidates: string[] }
  | { found: "ambiguous"; reason: string; candidates: string[] };

async function readRelease(
  fs: ImageFilesystem,
  entry: TreeEntry,
): Promise<{ text: string; fields: ReleaseFields }> {
  const text = (await readSmallFile(fs, entry, MAX_RELEASE_FILE)).toString("utf8");
  return { text, fields: parseOsRelease(text) };
}

/** Looks up the release file for image name `name` inside a filesystem. */
export async function findReleaseFile(
  fs: ImageFilesystem,
  name: string,
  kind: ExtensionKind,
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
  const relaxed: TreeEntry[] = [];
  for (const c of candidates) {
    const value = (await fs.xattrs(c))[STRICT_XATTR];
    if (value !== undefined && parseBoolean(value.toString("utf8").replace(/\0+$/, "")) === false)
      relaxed.push(c);
  }
  const names = candidates.map((c) => c.name);
  if (relaxed.length === 1) {
    const only = relaxed[0] as TreeEntry;
    return { found: "fallback", path: only.path, ...(await readRelease(fs, only)) };
  }
  if (relaxed.length > 1)
    return {
      found: "ambiguous",
      reason: `${relaxed.length} release files are marked ${STRICT_XATTR}=false, systemd needs exactly one`,
      candidates: names,
    };
  return {
    found: "none",
    reason:
      names.length === 0
        ? `no extension-release.${name} in ${dir.slice(1)}`
        : `no extension-release.${name} in ${dir.slice(1)} (found ${names.join(", ")}, none marked ${STRICT_XATTR}=false)`,
    candidates: names,
  };
}

/** Throws a clear error for a lookup that found nothing usable. */
export function requireRelease(
  result: ReleaseLookup,
  name: string,
): Extract<ReleaseLookup, { fields: ReleaseFields }> {
  if (result.found === "exact" || result.found === "fallback") return result;
  throw new ExtctlError(
    "incompatible",
    `the image has no usable release file for the name "${name}": ${"reason" in result ? result.reason : "not found"}`,
    {
      hint: `add ${"usr/lib/extension-release.d/extension-release." + name} to the image`,
    },
  );
}
