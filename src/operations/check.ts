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
    const verdict = checkCompatibility(await imageFacts(image, kind, rules), host, kind, rules);
    // The dissection's own limit: an image this systemd cannot read does not merge at all.
    const needs = image.dissected.requiresSystemd;
    if (needs && systemdVersion < needs.version) {
      const reason = `systemd ${systemdVersion} cannot read it: ${needs.reason}`;
      verdict.rules.unshift({ rule: "dissect", status: "fail", reason });
      verdict.compatible = false;
      verdict.reason = reason;
    }
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
