// The extension-release file that makes a tree an extension (kairos.md section 4, formats.md
// section 1): where it lives for NAME, what it says, and names systemd would not take.
import type { ExtensionKind } from "../store/layout.js";
import type { Architecture } from "../image/partition-types.js";
import { ExtctlError } from "../../util/errors.js";

export type GoArch = "amd64" | "arm64" | "riscv64";

export const GO_ARCHES: readonly GoArch[] = ["amd64", "arm64", "riscv64"];

export function systemdArchitecture(arch: string): Architecture {
  switch (arch) {
    case "amd64":
      return "x86-64";
    case "arm64":
      return "arm64";
    case "riscv64":
      return "riscv64";
    default:
      throw new ExtctlError("usage", `unknown architecture "${arch}"`, {
        hint: "use --arch amd64, arm64 or riscv64",
      });
  }
}

/** The Go name of the host architecture, the default for --arch. */
export function hostGoArch(arch: string = process.arch): GoArch {
  if (arch === "x64") return "amd64";
  if (arch === "arm64" || arch === "riscv64") return arch;
  return "amd64";
}

export interface ReleaseOptions {
  kind: ExtensionKind;
  name: string;
  arch: GoArch;
  /** ID=; default _any (any host OS). */
  osId?: string;
  /** SYSEXT_LEVEL= / CONFEXT_LEVEL=. */
  level?: string;
  /** VERSION_ID=: the host OS version the image is for. */
  versionId?: string;
  /** SYSEXT_SCOPE= / CONFEXT_SCOPE=, e.g. "system portable". */
  scope?: string;
  serviceReload?: boolean;
  /** SYSEXT_VERSION_ID= / CONFEXT_VERSION_ID=: the extension's own version. */
  version?: string;
}

export function releaseDirectory(kind: ExtensionKind): string {
  return kind === "sysext" ? "usr/lib/extension-release.d" : "etc/extension-release.d";
}

/** Tree path of the release file systemd looks for when the image is called `imageName`. */
export function releaseFilePath(kind: ExtensionKind, imageName: string): string {
  return `${releaseDirectory(kind)}/extension-release.${imageName}`;
}

/** The image name systemd 252-254 derive from NAME.sysext.raw: they only strip ".raw". */
export function legacyImageName(kind: ExtensionKind, name: string): string {
  return `${name}.${kind}`;
}

function quote(value: string, key: string): string {
  if (/[\n\r\0]/.test(value)) {
    throw new ExtctlError("usage", `the value for ${key} holds a line break`, {
      hint: "give a single-line value",
    });
  }
  if (/^[A-Za-z0-9._:+@%/-]+$/.test(value)) return value;
  return `"${value.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

const SCOPES = new Set(["initrd", "system", "portable"]);

export function renderReleaseFile(options: ReleaseOptions): string {
  const prefix = options.kind === "sysext" ? "SYSEXT" : "CONFEXT";
  if (options.level !== undefined && options.versionId !== undefined) {
    throw new ExtctlError("usage", "--sysext-level and --version-id exclude each other", {
      hint: "give one of them: systemd compares only one",
    });
  }
  const lines: [string, string][] = [["ID", options.osId ?? "_any"]];
  if (options.level !== undefined) lines.push([`${prefix}_LEVEL`, options.level]);
  if (options.versionId !== undefined) lines.push(["VERSION_ID", options.versionId]);
  lines.push(["ARCHITECTURE", systemdArchitecture(options.arch)]);
  if (options.scope !== undefined) {
    const words = options.scope.split(/\s+/).filter(Boolean);
    const bad = words.filter((w) => !SCOPES.has(w));
    if (bad.length > 0 || words.length === 0) {
      throw new ExtctlError("usage", `unknown scope "${options.scope}"`, {
        hint: "use a space-separated list of initrd, system and portable",
      });
    }
    lines.push([`${prefix}_SCOPE`, words.join(" ")]);
  }
  if (options.serviceReload) lines.push(["EXTENSION_RELOAD_MANAGER", "1"]);
  lines.push([`${prefix}_ID`, options.name]);
  if (options.version !== undefined) lines.push([`${prefix}_VERSION_ID`, options.version]);
  return lines.map(([k, v]) => `${k}=${quote(v, k)}`).join("\n") + "\n";
}

/** Problems with NAME that make systemd refuse or misname the image; empty when fine. */
export function namingProblems(kind: ExtensionKind, name: string): string[] {
  const problems: string[] = [];
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(name)) {
    problems.push(
      `"${name}" is not a valid image name for systemd (letters, digits, ".", "_", "+", "-", not starting with a dot)`,
    );
  }
  if (name.endsWith(".raw") || name.endsWith(`.${kind}`)) {
    problems.push(
      `"${name}" already ends in .raw or .${kind}; the file would be ${name}.${kind}.raw`,
    );
  }
  return problems;
}

/** Refuses names that cannot become a file name at all. */
export function checkImageName(name: string): void {
  if (name === "" || name.includes("/") || name === "." || name === ".." || name.includes("\0")) {
    throw new ExtctlError("usage", `"${name}" cannot be an image name`, {
      hint: "give a plain name such as hello or tailscale-1.2",
    });
  }
}
