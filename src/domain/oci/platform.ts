// Platforms (`os/arch[/variant]`) and the one rule for choosing an image from a multi-arch index,
// used by install, publish and build alike; names follow OCI, not Node.
import { ExtctlError } from "../../util/errors.js";

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const NODE_TO_OCI_ARCH: Record<string, string> = {
  x64: "amd64",
  ia32: "386",
  arm64: "arm64",
  arm: "arm",
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
  loong64: "loong64",
  mips: "mips",
  mipsel: "mipsle",
};

/**
 * The variant an architecture means when none is written, as containerd normalises it: arm64
 * images almost never say "v8", and a bare "arm" is ARMv7 (armhf).
 */
const DEFAULT_VARIANT: Readonly<Record<string, string>> = { arm64: "v8", arm: "v7" };

export function parsePlatform(text: string): Platform {
  const parts = text.trim().split("/");
  const valid = /^[a-z0-9_.-]+$/;
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !valid.test(p))) {
    throw new ExtctlError("usage", `invalid platform "${text}": write it as os/arch[/variant]`, {
      hint: "e.g. --platform linux/amd64 or --platform linux/arm/v7",
    });
  }
  const platform: Platform = { os: parts[0] as string, architecture: parts[1] as string };
  if (parts[2] !== undefined) platform.variant = parts[2];
  return platform;
}

export function hostPlatform(
  arch: string = process.arch,
  os: string = process.platform,
  armVersion: unknown = (process.config.variables as Record<string, unknown>).arm_version,
): Platform {
  const platform: Platform = { os, architecture: NODE_TO_OCI_ARCH[arch] ?? arch };
  if (
    arch === "arm" &&
    (typeof armVersion === "number" || (typeof armVersion === "string" && armVersion !== ""))
  ) {
    platform.variant = `v${armVersion}`;
  }
  return platform;
}

export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

function normalVariant(p: Platform): string | undefined {
  return p.variant ?? DEFAULT_VARIANT[p.architecture];
}

/**
 * Whether `candidate` serves `wanted`: os and architecture equal, and the variant equal (after
 * defaults) when one was asked for. Without a variant any of the architecture's will do.
 */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  if (wanted.os !== candidate.os || wanted.architecture !== candidate.architecture) return false;
  if (wanted.variant === undefined) return true;
  return normalVariant(wanted) === normalVariant(candidate);
}

/** Whether two index entries are for the same platform, as written (publish replaces those). */
export function samePlatform(a: Platform, b: Platform): boolean {
  return (
    a.os === b.os && a.architecture === b.architecture && (a.variant ?? "") === (b.variant ?? "")
  );
}

/**
 * Picks the entry to use: one whose variant is exactly the wanted one (after defaults) first,
 * else the first that matches at all; entries without a platform never match.
 */
export function choosePlatform<T extends { platform?: Platform }>(
  entries: readonly T[],
  wanted: Platform,
): T | undefined {
  const matching = entries.filter((e) => e.platform && platformMatches(wanted, e.platform));
  return (
    matching.find((e) => normalVariant(e.platform as Platform) === normalVariant(wanted)) ??
    matching[0]
  );
}
