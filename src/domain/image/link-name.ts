// The name an image gets in /run/extensions (or /run/confexts): one under which the root's
// systemd finds the release file the image carries (spec/kairos.md "ours" 9).
// systemd 252-254 call NAME.sysext.raw "NAME.sysext", so a Kairos-named image that carries
// extension-release.NAME merges there only when linked as NAME.raw; 255+ strip the suffix.
import { ExtctlError } from "../../util/errors.js";
import type { Root } from "../../util/root.js";
import type { ExtensionKind } from "../store/layout.js";
import { quoteName } from "../store/names.js";
import { dissectingSystemd } from "./host.js";
import { imageName, type SystemdRules } from "./compat.js";
import { baseImageName, findReleaseFile, releaseDirOf, type ReleaseLookup } from "./release.js";
import { hasFeature } from "./systemd-versions.js";
import type { ImageFilesystem } from "./tree.js";

export type FoundRelease = Extract<ReleaseLookup, { fields: unknown }>;

export type LinkNameChoice =
  | { ok: true; linkName: string; systemdName: string; release: FoundRelease }
  | {
      ok: false;
      /** The release files the image carries (file names), and why none fits. */
      carried: string[];
      reason: string;
      /** A store file name under which it would merge here, when one exists. */
      fix?: string;
    };

/**
 * The file names extctl may link `fileName` under, best first: its own, then for NAME.KIND.raw
 * the name without `.KIND` when this systemd would call the two differently (252-254).
 */
export function linkNameCandidates(
  fileName: string,
  kind: ExtensionKind,
  systemd: SystemdRules,
): string[] {
  const candidates = [fileName];
  const suffix = `.${kind}.raw`;
  if (fileName.endsWith(suffix) && fileName.length > suffix.length) {
    const bare = `${fileName.slice(0, -suffix.length)}.raw`;
    if (imageName(bare, kind, systemd) !== imageName(fileName, kind, systemd))
      candidates.push(bare);
  }
  return candidates;
}

/** Whether this systemd would take extension-release.`released` for an image linked as `link`. */
function serves(link: string, released: string, kind: ExtensionKind, systemd: SystemdRules) {
  const name = imageName(link, kind, systemd);
  return (
    name === released ||
    (hasFeature(systemd, "versionedNameFallback") && baseImageName(name) === released)
  );
}

/**
 * The store file name to suggest for an image carrying extension-release.`released`: the Kairos
 * spelling NAME.KIND.raw when it merges here through one of its link names, else NAME.raw.
 */
export function storeNameFor(
  released: string,
  kind: ExtensionKind,
  systemd: SystemdRules,
): string | undefined {
  for (const file of [`${released}.${kind}.raw`, `${released}.raw`]) {
    if (linkNameCandidates(file, kind, systemd).some((l) => serves(l, released, kind, systemd)))
      return file;
  }
  return undefined;
}

/** Picks the link name for image file `fileName` whose filesystem is `fs` (see the module note). */
export async function chooseLinkName(
  fs: ImageFilesystem,
  fileName: string,
  kind: ExtensionKind,
  systemd: SystemdRules,
): Promise<LinkNameChoice> {
  const options = { versionedNameFallback: hasFeature(systemd, "versionedNameFallback") };
  let first: ReleaseLookup | undefined;
  for (const linkName of linkNameCandidates(fileName, kind, systemd)) {
    const systemdName = imageName(linkName, kind, systemd);
    const release = await findReleaseFile(fs, systemdName, kind, options);
    first ??= release;
    if (release.found === "exact" || release.found === "fallback" || release.found === "base")
      return { ok: true, linkName, systemdName, release };
  }
  const lookup = first as Exclude<ReleaseLookup, FoundRelease>;
  const carried = lookup.candidates;
  const prefix = "extension-release.";
  const fixes = carried
    .map((c) =>
      c.startsWith(prefix) ? storeNameFor(c.slice(prefix.length), kind, systemd) : undefined,
    )
    .filter((f): f is string => f !== undefined);
  const dir = releaseDirOf(kind).slice(1);
  const names = linkNameCandidates(fileName, kind, systemd)
    .map((l) => `"${imageName(l, kind, systemd)}"`)
    .join(" or ");
  const reason =
    carried.length === 0
      ? `it carries no release file in ${dir}, so systemd ${systemd} merges it under no name`
      : lookup.found === "ambiguous"
        ? lookup.reason
        : `it carries ${carried.map((c) => `${dir}/${c}`).join(", ")}, but systemd ${systemd} names it ${names} and looks for extension-release.${imageName(fileName, kind, systemd)}`;
  return { ok: false, carried, reason, ...(fixes.length === 1 ? { fix: fixes[0] as string } : {}) };
}

/**
 * chooseLinkName for an image file on disk (`hostPath`, known in the store as `fileName`), as the
 * root's systemd `systemd` dissects it. An image that cannot be read has no better name than
 * its own: whoever links it reports why it does not merge.
 */
export async function linkNameOfFile(
  hostPath: string,
  fileName: string,
  kind: ExtensionKind,
  systemd: SystemdRules,
): Promise<LinkNameChoice | undefined> {
  const { openImage } = await import("./image.js");
  let image;
  try {
    image = await openImage(hostPath, { systemd });
  } catch {
    return undefined;
  }
  try {
    return await chooseLinkName(image.fs, fileName, kind, systemd);
  } catch {
    return undefined;
  } finally {
    await image.close();
  }
}

/**
 * The link name for store image `fileName` (at `hostPath`) on `root`, or an ExtctlError when
 * its release file fits no name the root's systemd could give it: such an image can never merge,
 * so install, enable and apply refuse it with the release file it carries and the name to use.
 * `stored` says whether it is in the store already (enable) or not yet (install: nothing is).
 */
export async function requireLinkName(
  root: Root,
  hostPath: string,
  fileName: string,
  kind: ExtensionKind,
  stored: boolean,
): Promise<string> {
  const systemd = await dissectingSystemd(root);
  const choice = await linkNameOfFile(hostPath, fileName, kind, systemd);
  if (choice === undefined || choice.ok) return choice?.linkName ?? fileName;
  throw new ExtctlError(
    "incompatible",
    `${quoteName(fileName)} can never merge on this node: ${choice.reason}${stored ? "" : "; nothing was stored"}`,
    {
      hint:
        choice.fix !== undefined
          ? `install it under the name its release file fits: --name ${choice.fix}`
          : `give it a release file ${releaseDirOf(kind).slice(1)}/extension-release.NAME and install it as NAME.${kind}.raw`,
    },
  );
}
