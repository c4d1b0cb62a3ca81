// Will systemd-sysext/confext merge this image on this host? systemd's checks in systemd's own
// order (extension_release_validate and the steps before it), for the rules of 252, 255 and 258.
import type { ExtensionKind } from "../store/layout.js";
import type { ReleaseFields } from "./os-release.js";
import type { ReleaseLookup } from "./release.js";

export type SystemdRules = 252 | 255 | 258;

export type RuleStatus = "pass" | "fail" | "skip" | "warn";

export interface RuleResult {
  rule: string;
  status: RuleStatus;
  reason: string;
}

export interface CompatibilityVerdict {
  name: string;
  kind: ExtensionKind;
  systemd: SystemdRules;
  compatible: boolean;
  /** The first failing rule's reason, short enough for a table column. */
  reason?: string;
  rules: RuleResult[];
}

export interface HostFacts {
  osRelease: ReleaseFields;
  architecture: string;
  /** "system" on a booted host, "initrd" inside the initrd. */
  scope: "system" | "initrd" | "portable";
}

export interface ImageFacts {
  fileName: string;
  release: ReleaseLookup;
  /** True when the image carries usr/lib/os-release. */
  hasOsRelease: boolean;
  /** Top-level entries outside the hierarchies the kind may touch. */
  outsideHierarchies: string[];
  /** A DDI whose data partition is for another architecture (no usable partition here). */
  foreignArchitecture?: string;
}

/** Maps a systemd version number onto the rule set that applies to it. */
export function rulesFor(version: number): SystemdRules {
  if (version >= 258) return 258;
  if (version >= 255) return 255;
  return 252;
}

/** The name systemd gives an image file: minus .raw; 255+ also minus .sysext/.confext. */
export function imageName(fileName: string, kind: ExtensionKind, systemd: SystemdRules): string {
  let name = fileName.endsWith(".raw") ? fileName.slice(0, -4) : fileName;
  if (systemd >= 255 && name.endsWith(`.${kind}`)) name = name.slice(0, -(kind.length + 1));
  return name;
}

export function checkCompatibility(
  image: ImageFacts,
  host: HostFacts,
  kind: ExtensionKind,
  systemd: SystemdRules,
): CompatibilityVerdict {
  const rules: RuleResult[] = [];
  const name = imageName(image.fileName, kind, systemd);
  let decided: boolean | undefined;
  const add = (rule: string, ok: boolean | "warn", reason: string) => {
    if (decided !== undefined) {
      rules.push({ rule, status: "skip", reason: "not checked: an earlier rule decided" });
      return;
    }
    rules.push({ rule, status: ok === "warn" ? "warn" : ok ? "pass" : "fail", reason });
    if (ok === false) decided = false;
  };
  const accept = () => {
    decided ??= true;
  };
  const upper = kind === "confext" ? "CONFEXT" : "SYSEXT";

  add("image-name", true, `systemd ${systemd} names ${image.fileName} "${name}"`);
  if (image.foreignArchitecture)
    add(
      "partition-architecture",
      false,
      `the image only has partitions for ${image.foreignArchitecture}, not ${host.architecture}`,
    );
  else
    add(
      "partition-architecture",
      true,
      "a data partition for this host exists or the image is a plain filesystem",
    );
  add(
    "no-os-release",
    !image.hasOsRelease,
    image.hasOsRelease
      ? "the image contains usr/lib/os-release, so systemd treats it as an OS, not an extension"
      : "no usr/lib/os-release in the image",
  );
  const release = image.release;
  if (release.found === "exact" || release.found === "fallback") {
    add(
      "release-file",
      true,
      release.found === "exact"
        ? `found ${release.path.slice(1)}`
        : `using ${release.path.slice(1)} (marked user.extension-release.strict=false)`,
    );
  } else {
    add("release-file", false, "reason" in release ? release.reason : "no release file");
  }
  const fields: ReleaseFields = "fields" in release ? release.fields : {};
  const os = host.osRelease;

  // extension_release_validate, step by step.
  add(
    "not-empty",
    Object.keys(fields).length > 0,
    Object.keys(fields).length > 0 ? "the release file has fields" : "the release file is empty",
  );

  const scopeText = fields[`${upper}_SCOPE`];
  const scopes = (scopeText ?? "system portable").split(/\s+/).filter(Boolean);
  add(
    "scope",
    scopes.includes(host.scope),
    scopes.includes(host.scope)
      ? `${upper}_SCOPE ${scopeText === undefined ? "(default system portable)" : `"${scopeText}"`} includes ${host.scope}`
      : `${upper}_SCOPE "${scopeText}" does not include ${host.scope}`,
  );

  const arch = fields.ARCHITECTURE;
  const archOk = arch === undefined || arch === "_any" || arch === host.architecture;
  add(
    "architecture",
    archOk,
    arch === undefined
      ? "ARCHITECTURE not set"
      : archOk
        ? `ARCHITECTURE=${arch} matches ${host.architecture}`
        : `ARCHITECTURE=${arch} is not the host's ${host.architecture}`,
  );

  const id = fields.ID;
  add("id-set", id !== undefined && id !== "", id ? `ID=${id}` : "the release file has no ID");
  if (id === "_any") {
    add("id-match", true, "ID=_any matches every host, versions are not compared");
    accept();
  } else if (id) {
    const likes = (os.ID_LIKE ?? "").split(/\s+/).filter(Boolean);
    const ok = id === os.ID || (systemd >= 258 && likes.includes(id));
    add(
      "id-match",
      ok,
      ok
        ? id === os.ID
          ? `ID=${id} matches the host`
          : `ID=${id} is in the host's ID_LIKE`
        : `ID=${id} is not the host's ID=${os.ID ?? "(unset)"}${systemd >= 258 ? ` or in its ID_LIKE` : ""}`,
    );
  }

  const hostLevel = os[`${upper}_LEVEL`];
  const hostVersion = os.VERSION_ID;
  if (decided === undefined && hostLevel === undefined && hostVersion === undefined) {
    add(
      "version",
      true,
      "the host has neither VERSION_ID nor " + `${upper}_LEVEL, so any version goes`,
    );
    accept();
  } else if (hostLevel !== undefined && fields[`${upper}_LEVEL`] !== undefined) {
    const ok = hostLevel === fields[`${upper}_LEVEL`];
    add(
      "version",
      ok,
      ok
        ? `${upper}_LEVEL=${hostLevel} matches`
        : `${upper}_LEVEL=${fields[`${upper}_LEVEL`]} is not the host's ${hostLevel}`,
    );
  } else {
    const imageVersion = fields.VERSION_ID;
    const ok = hostVersion !== undefined && imageVersion === hostVersion;
    add(
      "version",
      ok,
      ok
        ? `VERSION_ID=${imageVersion} matches`
        : imageVersion === undefined
          ? `the release file has no VERSION_ID (host has ${hostVersion ?? `only ${upper}_LEVEL`})`
          : `VERSION_ID=${imageVersion} is not the host's ${hostVersion ?? `(unset; host has only ${upper}_LEVEL)`}`,
    );
  }
  accept();

  if (image.outsideHierarchies.length > 0) {
    rules.push({
      rule: "hierarchies",
      status: "warn",
      reason: `content outside the ${kind} hierarchies is ignored: ${image.outsideHierarchies.slice(0, 5).join(", ")}`,
    });
  }
  const failed = rules.find((r) => r.status === "fail");
  return {
    name,
    kind,
    systemd,
    compatible: failed === undefined,
    ...(failed ? { reason: failed.reason } : {}),
    rules,
  };
}
