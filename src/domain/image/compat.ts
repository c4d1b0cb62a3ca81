// Will systemd-sysext/confext merge this image on this host? systemd's checks in systemd's own
// order (the dissection and image policy, then extension_release_validate), for the root's
// systemd version; what changed between versions is looked up in systemd-versions.ts.
import type { ExtensionKind } from "../store/layout.js";
import type { ReleaseFields } from "./os-release.js";
import type { ReleaseLookup } from "./release.js";
import { cite, hasFeature } from "./systemd-versions.js";

/** A systemd version number (252, 257, 262...): the rules of that version apply. */
export type SystemdRules = number;

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

/** The image policy the node's systemd-sysext/confext (or extctl's admission) applies. */
export interface PolicyFacts {
  /** systemd's policy string. */
  text: string;
  /** Where it comes from: a unit drop-in path, /etc/extctl/policy, trusted boot, default. */
  source: string;
  /** True when systemd itself is given it (an ExecStart= --image-policy in a drop-in). */
  inUnit: boolean;
  /** True when systemd's default (no policy given anywhere). */
  isDefault: boolean;
  /** Whether what the image carries satisfies the policy, and why. */
  allowed: boolean;
  reason: string;
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
  /** The image policy and how the image fares under it; undefined: not looked at. */
  policy?: PolicyFacts;
}

/** Kept for callers that pick rules by version: every version is its own rule set now. */
export function rulesFor(version: number): SystemdRules {
  return version;
}

/** The name systemd gives an image file: minus .raw; 255+ also minus .sysext/.confext. */
export function imageName(fileName: string, kind: ExtensionKind, systemd: SystemdRules): string {
  let name = fileName.endsWith(".raw") ? fileName.slice(0, -4) : fileName;
  if (hasFeature(systemd, "stripKindSuffix") && name.endsWith(`.${kind}`))
    name = name.slice(0, -(kind.length + 1));
  return name;
}

/** systemd's isempty(): unset and "" are the same. */
function value(fields: ReleaseFields, key: string): string | undefined {
  const v = fields[key];
  return v === undefined || v === "" ? undefined : v;
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
  const os = host.osRelease;

  if (kind === "confext")
    add(
      "confext-supported",
      hasFeature(systemd, "confext"),
      hasFeature(systemd, "confext")
        ? `systemd ${systemd} has systemd-confext`
        : `systemd ${systemd} has no systemd-confext (${cite("confext")}): nothing merges /etc`,
    );
  add(
    "host-os-release",
    os.ID !== undefined && os.ID !== "",
    os.ID
      ? `the host is ID=${os.ID}`
      : "the host's os-release has no ID, so systemd refuses every image",
  );
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
  if (image.policy) policyRule(image.policy, systemd, add);
  add(
    "no-os-release",
    !image.hasOsRelease,
    image.hasOsRelease
      ? "the image contains usr/lib/os-release, so systemd treats it as an OS, not an extension"
      : "no usr/lib/os-release in the image",
  );
  const release = image.release;
  if (release.found === "exact" || release.found === "fallback" || release.found === "base") {
    add(
      "release-file",
      true,
      release.found === "exact"
        ? `found ${release.path.slice(1)}`
        : release.found === "base"
          ? `using ${release.path.slice(1)}: ${cite("versionedNameFallback")}`
          : `using ${release.path.slice(1)} (marked user.extension-release.strict=false)`,
    );
  } else {
    add("release-file", false, "reason" in release ? release.reason : "no release file");
  }
  const fields: ReleaseFields = "fields" in release ? release.fields : {};

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

  const arch = value(fields, "ARCHITECTURE");
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

  const id = value(fields, "ID");
  add("id-set", id !== undefined, id ? `ID=${id}` : "the release file has no ID (or an empty one)");
  if (id === "_any") {
    add("id-match", true, "ID=_any matches every host, versions are not compared");
    accept();
  } else if (id) {
    const likes = (os.ID_LIKE ?? "").split(/\s+/).filter(Boolean);
    const idLike = hasFeature(systemd, "idLike");
    const ok = id === os.ID || (idLike && likes.includes(id));
    add(
      "id-match",
      ok,
      ok
        ? id === os.ID
          ? `ID=${id} matches the host`
          : `ID=${id} is in the host's ID_LIKE: ${cite("idLike")}`
        : `ID=${id} is not the host's ID=${os.ID ?? "(unset)"}` +
            (idLike
              ? ` or in its ID_LIKE`
              : likes.includes(id)
                ? ` (ID_LIKE counts only from ${cite("idLike")})`
                : ""),
    );
  }

  const hostLevel = value(os, `${upper}_LEVEL`);
  const hostVersion = value(os, "VERSION_ID");
  const imageLevel = value(fields, `${upper}_LEVEL`);
  if (decided === undefined && hostLevel === undefined && hostVersion === undefined) {
    add("version", true, `the host has neither VERSION_ID nor ${upper}_LEVEL, so any version goes`);
  } else if (hostLevel !== undefined && imageLevel !== undefined) {
    const ok = hostLevel === imageLevel;
    add(
      "version",
      ok,
      ok
        ? `${upper}_LEVEL=${hostLevel} matches`
        : `${upper}_LEVEL=${imageLevel} is not the host's ${hostLevel}`,
    );
  } else if (hostVersion !== undefined) {
    const imageVersion = value(fields, "VERSION_ID");
    const ok = imageVersion === hostVersion;
    add(
      "version",
      ok,
      ok
        ? `VERSION_ID=${imageVersion} matches`
        : imageVersion === undefined
          ? `the release file has no VERSION_ID (or an empty one) and the host has ${hostVersion}`
          : `VERSION_ID=${imageVersion} is not the host's ${hostVersion}`,
    );
  } else {
    // The host has only a level and the image none: systemd compares nothing more.
    add("version", true, `the host has ${upper}_LEVEL but no VERSION_ID, the image no level`);
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

/**
 * The image policy as a rule: systemd applies a policy from 254 on; an older systemd given one
 * in its unit fails outright, and a policy from extctl's own config is enforced by extctl when it
 * links images, whatever the version.
 */
function policyRule(
  policy: PolicyFacts,
  systemd: SystemdRules,
  add: (rule: string, ok: boolean | "warn", reason: string) => void,
): void {
  const from = `${policy.text} from ${policy.source}`;
  if (policy.inUnit && !hasFeature(systemd, "imagePolicy")) {
    add(
      "image-policy",
      false,
      `${policy.source} passes --image-policy, which systemd ${systemd} does not know (${cite("imagePolicy")}): the refresh fails and nothing merges`,
    );
    return;
  }
  if (policy.isDefault) {
    add("image-policy", true, `no image policy is set (${from}): ${policy.reason}`);
    return;
  }
  add(
    "image-policy",
    policy.allowed,
    policy.allowed ? `${from} allows it: ${policy.reason}` : `${from} refuses it: ${policy.reason}`,
  );
}
