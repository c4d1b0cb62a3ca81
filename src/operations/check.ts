// `extctl check IMAGE`: would systemd-sysext/confext merge this image on this root? Every rule in
// systemd's order with pass or fail and why.
import path from "node:path";
import type { Context } from "../util/context.js";
import { ExtctlError } from "../util/errors.js";
import { checkCompatibility, rulesFor, type CompatibilityVerdict } from "../domain/image/compat.js";
import { NEWEST_SYSTEMD, detectSystemdVersion, hostFacts } from "../domain/image/host.js";
import { imageFacts, openImage } from "../domain/image/image.js";
import type { ExtensionKind } from "../domain/store/layout.js";

export interface CheckOptions {
  kind?: ExtensionKind;
  /** systemd version whose rules apply; default: the root's, else the newest. */
  systemd?: number;
}

export interface CheckResult extends CompatibilityVerdict {
  path: string;
  systemdVersion: number;
  systemdVersionSource: "option" | "root" | "default";
  hostId?: string;
  hostVersionId?: string;
}

export async function checkImage(
  ctx: Context,
  imagePath: string,
  options: CheckOptions = {},
): Promise<CheckResult> {
  if (
    options.systemd !== undefined &&
    (!Number.isInteger(options.systemd) || options.systemd < 200 || options.systemd > 999)
  )
    throw new ExtctlError(
      "usage",
      `--systemd ${options.systemd} is not a systemd version (e.g. 252, 255, 258)`,
    );
  const hostPath = path.resolve(imagePath);
  const fileName = path.basename(hostPath);
  const kind: ExtensionKind =
    options.kind ?? (/\.confext(\.raw)?$/.test(fileName) ? "confext" : "sysext");
  const detected = options.systemd === undefined ? await detectSystemdVersion(ctx.root) : undefined;
  const systemdVersion = options.systemd ?? detected ?? NEWEST_SYSTEMD;
  const source =
    options.systemd !== undefined ? "option" : detected !== undefined ? "root" : "default";
  const host = await hostFacts(ctx.root, ctx.env);
  if (Object.keys(host.osRelease).length === 0)
    ctx.log.warn(
      `${ctx.root.dir} has no os-release (etc/os-release or usr/lib/os-release); systemd would refuse every image`,
    );
  const image = await openImage(hostPath);
  try {
    const rules = rulesFor(systemdVersion);
    const verdict = withConfextTool(
      checkCompatibility(await imageFacts(image, kind, rules), host, kind, rules),
      systemdVersion,
    );
    return {
      ...verdict,
      path: hostPath,
      systemdVersion,
      systemdVersionSource: source,
      ...(host.osRelease.ID !== undefined ? { hostId: host.osRelease.ID } : {}),
      ...(host.osRelease.VERSION_ID !== undefined
        ? { hostVersionId: host.osRelease.VERSION_ID }
        : {}),
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
