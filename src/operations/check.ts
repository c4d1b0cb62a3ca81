// `extctl check IMAGE`: would systemd-sysext/confext merge this image on this root? Every rule in
// systemd's order with pass or fail and why, for the root's own systemd version, including the
// image policy that the root's systemd-sysext/confext unit (or extctl's admission) applies.
import path from "node:path";
import { stat } from "node:fs/promises";
import type { Context } from "../util/context.js";
import { ExtctlError } from "../util/errors.js";
import {
  checkCompatibility,
  imageName,
  rulesFor,
  type CompatibilityVerdict,
  type HostFacts,
  type PolicyFacts,
  type RuleResult,
} from "../domain/image/compat.js";
import { NEWEST_SYSTEMD, hostFacts, mergingSystemd } from "../domain/image/host.js";
import { imageFacts, openImage, type OpenedImage } from "../domain/image/image.js";
import { unreadableBySystemd } from "../domain/image/ddi.js";
import { chooseLinkName } from "../domain/image/link-name.js";
import { parseBoolean } from "../domain/image/os-release.js";
import { hasFeature } from "../domain/image/systemd-versions.js";
import type { Protection } from "../domain/trust/policy.js";
import type { ExtensionKind } from "../domain/store/layout.js";

export interface CheckOptions {
  /** The image file (a host path). */
  image: string;
  kind?: ExtensionKind;
  /** systemd version whose rules apply; default: the root's, else the newest. */
  systemd?: number;
  /** The file name systemd will see the image under (default: the path's own). */
  fileName?: string;
  /** Judge against this os-release instead of the root's (an OS the node upgrades to). */
  osRelease?: Record<string, string>;
  /** Leave the image policy out (boot has applied the node's policy already). */
  skipPolicy?: boolean;
  /** The scope the merge runs in, when not where check runs (boot in the initrd links for the system). */
  scope?: "system" | "initrd";
  /**
   * The search dir (node path) systemd finds the entry in: masking counts the entries before
   * it. Default: the dir the image is in when that is a search dir, else the runtime dir
   * (where extctl links it).
   */
  searchDir?: string;
}

export interface CheckResult extends CompatibilityVerdict {
  path: string;
  systemdVersion: number;
  systemdVersionSource: "option" | "root" | "host" | "default";
  hostId?: string;
  hostVersionId?: string;
  /** The image policy applied and where it came from. */
  policy?: { text: string; source: string };
  /** The name extctl links the image under in /run (differs from the file's on systemd 252-254). */
  linkName: string;
  /** A directory checked: a directory extension, or a version directory and what systemd picks. */
  entry?: {
    type: "directory" | "versioned";
    picked?: { file: string; version: string; path: string };
  };
}

/** systemd's $SYSTEMD_DISSECT_VERITY_EMBEDDED / _SIDECAR: false turns that verity source off. */
function veritySourceOff(env: NodeJS.ProcessEnv, name: string): boolean {
  const v = env[name];
  return v !== undefined && parseBoolean(v) === false;
}

/**
 * The policy the root's systemd-sysext/confext runs with (unit drop-ins), or extctl's own
 * (/etc/extctl/policy, trusted boot), judged against what the image carries as systemd sees it.
 */
async function policyFacts(
  ctx: Context,
  image: OpenedImage,
  kind: ExtensionKind,
): Promise<PolicyFacts> {
  const { policyAllows, resolvePolicy, unitImagePolicy } =
    await import("../domain/trust/policy.js");
  // systemd obeys its unit's policy; without one, extctl's own (policy file, trusted boot)
  // decides what gets linked at all.
  const resolved =
    (await unitImagePolicy(ctx, kind)) ?? (await resolvePolicy(ctx, undefined, { kind }));
  const base = {
    text: resolved.policy.text,
    source: resolved.source,
    inUnit: resolved.source.includes(".service.d/"),
    isDefault: resolved.source === "systemd default",
  };
  const policy = resolved.policy;
  if (policy.root.has("unprotected") && policy.usr.has("unprotected"))
    return { ...base, allowed: true, reason: "it allows unprotected images" };
  // With these off systemd never sees a root hash or signature and mounts the data as it is,
  // but its policy check still goes by the partitions a DDI has (seen on 257): a signature
  // partition counts as signed, a verity partition as verity; a bare image is unprotected.
  const embeddedOff =
    image.dissected.kind !== "bare-fs" &&
    veritySourceOff(ctx.env, "SYSTEMD_DISSECT_VERITY_EMBEDDED");
  const sidecarOff =
    image.dissected.kind === "bare-fs" &&
    veritySourceOff(ctx.env, "SYSTEMD_DISSECT_VERITY_SIDECAR");
  if (embeddedOff || sidecarOff) {
    const variable = embeddedOff
      ? "SYSTEMD_DISSECT_VERITY_EMBEDDED"
      : "SYSTEMD_DISSECT_VERITY_SIDECAR";
    const protection: Protection = !embeddedOff
      ? "unprotected"
      : image.dissected.signature
        ? "signed"
        : image.dissected.verity
          ? "verity"
          : "unprotected";
    const allowed = policyAllows(policy, image.dissected.designator ?? "root", protection);
    return {
      ...base,
      allowed,
      reason: `${variable}=${ctx.env[variable]} makes systemd mount the data without verity; its policy sees ${protection} partitions`,
    };
  }
  const [{ loadTrustStore }, { evaluateImage }] = await Promise.all([
    import("../domain/trust/truststore.js"),
    import("../domain/trust/image-trust.js"),
  ]);
  const verdict = await evaluateImage(ctx, image.path, policy, await loadTrustStore(ctx));
  return { ...base, allowed: verdict.ok, reason: verdict.reason };
}

export async function checkImage(ctx: Context, options: CheckOptions): Promise<CheckResult> {
  if (
    options.systemd !== undefined &&
    (!Number.isInteger(options.systemd) || options.systemd < 200 || options.systemd > 999)
  )
    throw new ExtctlError(
      "usage",
      `--systemd ${options.systemd} is not a systemd version (e.g. 252, 255, 258)`,
    );
  const hostPath = path.resolve(options.image);
  const fileName = options.fileName ?? path.basename(hostPath);
  const kind: ExtensionKind =
    options.kind ?? (/\.confext(\.raw)?$/.test(fileName) ? "confext" : "sysext");
  const merging = options.systemd === undefined ? await mergingSystemd(ctx.root) : undefined;
  const systemdVersion = options.systemd ?? merging?.version ?? NEWEST_SYSTEMD;
  const source = options.systemd !== undefined ? "option" : (merging?.source ?? "default");
  const rootHost = await hostFacts(ctx.root, ctx.env, {
    scopeFromRootOnly: !ctx.root.isHostRoot && hasFeature(systemdVersion, "rootInitrdRelease"),
  });
  const host = {
    ...rootHost,
    ...(options.osRelease ? { osRelease: options.osRelease } : {}),
    ...(options.scope ? { scope: options.scope } : {}),
  };
  if (Object.keys(host.osRelease).length === 0)
    ctx.log.warn(
      `${ctx.root.dir} has no os-release (etc/os-release or usr/lib/os-release); systemd would refuse every image`,
    );
  const about = {
    path: hostPath,
    systemdVersion,
    systemdVersionSource: source,
    ...(host.osRelease.ID !== undefined ? { hostId: host.osRelease.ID } : {}),
    ...(host.osRelease.VERSION_ID !== undefined
      ? { hostVersionId: host.osRelease.VERSION_ID }
      : {}),
  } as const;
  const searchDir = options.searchDir ?? (await searchDirOf(ctx, hostPath, kind, systemdVersion));
  if ((await stat(hostPath).catch(() => undefined))?.isDirectory())
    return checkDirectory(ctx, options, {
      hostPath,
      fileName,
      kind,
      systemdVersion,
      host,
      about,
      searchDir,
    });
  let image: OpenedImage;
  try {
    image = await openImage(hostPath, {
      systemd: systemdVersion,
      embeddedVerity: !veritySourceOff(ctx.env, "SYSTEMD_DISSECT_VERITY_EMBEDDED"),
    });
  } catch (e) {
    // An image this systemd cannot dissect is a verdict, not an error: it never merges (and
    // takes its whole refresh down with it).
    if (!(e instanceof ExtctlError) || e.code !== "format") throw e;
    const reason = e.message;
    return {
      name: imageName(fileName, kind, systemdVersion),
      kind,
      systemd: systemdVersion,
      compatible: false,
      reason,
      rules: [{ rule: "dissect", status: "fail", reason }],
      ...about,
      linkName: fileName,
    };
  }
  try {
    const rules = rulesFor(systemdVersion);
    const policy = options.skipPolicy ? undefined : await policyFacts(ctx, image, kind);
    // extctl links the image under a name whose release file it carries (252-254: NAME.raw for
    // NAME.sysext.raw); the rules are those systemd applies to that link.
    const choice = await chooseLinkName(image.fs, fileName, kind, rules);
    const linkName = choice.ok ? choice.linkName : fileName;
    const verdict = withConfextTool(
      checkCompatibility(
        { ...(await imageFacts(image, kind, rules, linkName)), ...(policy ? { policy } : {}) },
        host,
        kind,
        rules,
      ),
      systemdVersion,
    );
    if (linkName !== fileName) {
      const at = verdict.rules.findIndex((r) => r.rule === "image-name");
      verdict.rules[at] = {
        rule: "image-name",
        status: "pass",
        reason: `extctl links ${fileName} as ${linkName}, which systemd ${systemdVersion} names "${verdict.name}"`,
      };
    } else if (!choice.ok && choice.fix !== undefined) {
      const release = verdict.rules.find((r) => r.rule === "release-file" && r.status === "fail");
      if (release)
        release.reason = `${choice.reason}; store it as ${choice.fix} (install --name ${choice.fix})`;
      const firstFail = verdict.rules.find((r) => r.status === "fail");
      if (firstFail) verdict.reason = firstFail.reason;
    }
    // systemd's masking, for the image where systemd finds it (as extctl links it: /run).
    const mask = await maskingRule(ctx, kind, systemdVersion, searchDir, verdict.name);
    verdict.rules.push(mask.rule);
    if (mask.reason !== undefined) {
      verdict.compatible = false;
      verdict.reason ??= mask.reason;
    }
    // The dissection's own limit: an image this systemd cannot read does not merge at all.
    const reason = unreadableBySystemd(image.dissected, systemdVersion);
    if (reason) {
      verdict.rules.unshift({ rule: "dissect", status: "fail", reason });
      verdict.compatible = false;
      verdict.reason = reason;
    }
    return {
      ...verdict,
      ...about,
      ...(policy ? { policy: { text: policy.text, source: policy.source } } : {}),
      linkName,
    };
  } finally {
    await image.close();
  }
}

/** systemd-confext came with systemd 254: before it nothing merges a confext, whatever it holds. */
export const FIRST_CONFEXT_SYSTEMD = 254;

function withConfextTool(
  verdict: CompatibilityVerdict,
  systemdVersion: number,
): CompatibilityVerdict {
  if (verdict.kind !== "confext" || systemdVersion >= FIRST_CONFEXT_SYSTEMD) return verdict;
  const reason = `systemd ${systemdVersion} has no systemd-confext (it came with ${FIRST_CONFEXT_SYSTEMD}), so no confext merges on this root`;
  return {
    ...verdict,
    compatible: false,
    reason,
    rules: [{ rule: "confext-tool", status: "fail", reason }, ...verdict.rules],
  };
}

/** The search dir `hostPath` (an entry, or an image) sits in on this root, else the runtime dir. */
async function searchDirOf(
  ctx: Context,
  hostPath: string,
  kind: ExtensionKind,
  systemd: number,
): Promise<string> {
  const [{ searchDirs }, { LAYOUTS }] = await Promise.all([
    import("../domain/activate/search-entries.js"),
    import("../domain/store/layout.js"),
  ]);
  const nodePath = ctx.root.toNodePath(hostPath);
  const dir = nodePath === undefined ? undefined : path.posix.dirname(nodePath);
  return dir !== undefined && searchDirs(kind, systemd).includes(dir) ? dir : LAYOUTS[kind].runtime;
}

/** The masking rule for name `name` found in `searchDir`, and the reason when it is masked. */
async function maskingRule(
  ctx: Context,
  kind: ExtensionKind,
  systemd: number,
  searchDir: string,
  name: string,
): Promise<{ rule: RuleResult; reason?: string }> {
  const { masksBefore, describeMask } = await import("../domain/activate/masking.js");
  const mask = (await masksBefore(ctx.root, kind, systemd, searchDir)).get(name);
  if (!mask)
    return {
      rule: {
        rule: "masking",
        status: "pass",
        reason: `no entry named "${name}" comes before ${searchDir} in systemd's search order`,
      },
    };
  const reason = describeMask(mask);
  return { rule: { rule: "masking", status: "fail", reason }, reason };
}

interface DirectoryCheck {
  hostPath: string;
  fileName: string;
  kind: ExtensionKind;
  systemdVersion: number;
  host: HostFacts;
  about: Omit<CheckResult, keyof CompatibilityVerdict | "linkName" | "policy" | "entry">;
  searchDir: string;
}

/**
 * A directory: from 256 on NAME.raw.v/ is a version directory (systemd.v) and the verdict is the
 * picked version's; otherwise (and on 252-255 for NAME.raw.v/ too) it is a directory extension,
 * bind-mounted as it is: its release file and content decide, no dissection, no image policy.
 */
async function checkDirectory(
  ctx: Context,
  options: CheckOptions,
  d: DirectoryCheck,
): Promise<CheckResult> {
  const { readVersionedDir, directoryName } = await import("../domain/activate/search-entries.js");
  const { FIRST_VPICK_SYSTEMD, versionedDir } = await import("../domain/image/vpick.js");
  const vd = versionedDir(d.fileName, d.kind);
  if (d.systemdVersion >= FIRST_VPICK_SYSTEMD && vd) {
    const read = await readVersionedDir(async (p) => p, d.hostPath, d.fileName, d.kind);
    const picked = read.picked
      ? {
          file: read.picked.file,
          version: read.picked.version,
          path: path.join(d.hostPath, read.picked.file),
        }
      : undefined;
    const entry = { type: "versioned" as const, ...(picked ? { picked } : {}) };
    if (read.skipped !== undefined || !picked) {
      const reason = read.skipped ?? "nothing to pick";
      return {
        name: read.name,
        kind: d.kind,
        systemd: d.systemdVersion,
        compatible: false,
        reason,
        rules: [{ rule: "versioned-dir", status: "fail", reason }],
        ...d.about,
        linkName: d.fileName,
        entry,
      };
    }
    const pickRule: RuleResult = {
      rule: "versioned-dir",
      status: "pass",
      reason: `systemd ${d.systemdVersion} picks ${picked.file} (version ${picked.version}) and names it "${vd.name}" (systemd.v)`,
    };
    const inner = await checkImage(ctx, {
      ...options,
      image: picked.path,
      kind: d.kind,
      fileName: vd.wants === "file" ? `${vd.name}${vd.suffix}` : vd.name,
      systemd: d.systemdVersion,
      searchDir: d.searchDir,
    });
    return {
      ...inner,
      rules: [pickRule, ...inner.rules],
      path: d.hostPath,
      linkName: d.fileName,
      entry,
    };
  }
  const { DirectoryFilesystem } = await import("../domain/image/directory-fs.js");
  const { findReleaseFile } = await import("../domain/image/release.js");
  const { lookup } = await import("../domain/image/tree.js");
  const { HIERARCHIES } = await import("../domain/image/image.js");
  const fs = new DirectoryFilesystem(d.hostPath);
  const name = directoryName(d.fileName, d.kind, d.systemdVersion);
  const rules = rulesFor(d.systemdVersion);
  const top = await fs.list(await fs.root());
  const verdict = withConfextTool(
    checkCompatibility(
      {
        // checkCompatibility names a file by cutting .raw: give it one that cuts to `name`.
        fileName: d.fileName.endsWith(".raw") ? `${name}.raw` : name,
        release: await findReleaseFile(fs, name, d.kind, {
          versionedNameFallback: hasFeature(d.systemdVersion, "versionedNameFallback"),
        }),
        hasOsRelease: (await lookup(fs, "/usr/lib/os-release", { follow: true })) !== undefined,
        outsideHierarchies: top
          .filter((e) => !HIERARCHIES[d.kind].includes(e.name))
          .map((e) => `/${e.name}`),
      },
      d.host,
      d.kind,
      rules,
    ),
    d.systemdVersion,
  );
  const at = verdict.rules.findIndex((r) => r.rule === "image-name");
  if (at >= 0)
    verdict.rules[at] = {
      rule: "image-name",
      status: "pass",
      reason: `systemd ${d.systemdVersion} takes the directory ${d.fileName} as a directory extension named "${name}"${
        vd ? ` (systemd.v version directories came with ${FIRST_VPICK_SYSTEMD})` : ""
      }`,
    };
  // A directory is bind-mounted, not dissected: no partition to choose.
  verdict.rules = verdict.rules.filter((r) => r.rule !== "partition-architecture");
  if (vd && verdict.reason !== undefined)
    verdict.reason = `systemd ${d.systemdVersion} reads no version directories (systemd.v came with ${FIRST_VPICK_SYSTEMD}): it takes ${d.fileName} as a directory extension named "${name}", and ${verdict.reason}`;
  const mask = await maskingRule(ctx, d.kind, d.systemdVersion, d.searchDir, verdict.name);
  verdict.rules.push(mask.rule);
  if (mask.reason !== undefined) {
    verdict.compatible = false;
    verdict.reason ??= mask.reason;
  }
  return { ...verdict, ...d.about, linkName: d.fileName, entry: { type: "directory" } };
}
