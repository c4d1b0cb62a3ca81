// Platforms (`os/arch[/variant]`) and how one is chosen from a multi-arch index: the host's by
// default, named the way OCI names architectures rather than the way Node does.
import { ExtctlError } from "../../../util/errors.js";

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
  if (arch === "arm" && armVersion !== undefined && armVersion !== "") {
    platform.variant = `v${String(armVersion)}`;
  }
  return platform;
}

export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** arm64 images usually omit "v8"; treat the two spellings as the same variant. */
function normalVariant(p: Platform): string | undefined {
  if (p.architecture === "arm64" && (p.variant === undefined || p.variant === "v8")) return "v8";
  return p.variant;
}

/**
 * Whether `candidate` serves `wanted`: os and architecture equal, and the variant equal when
 * the user asked for one.
 */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  if (wanted.os !== candidate.os || wanted.architecture !== candidate.architecture) return false;
  if (wanted.variant === undefined) return true;
  return normalVariant(wanted) === normalVariant(candidate);
}

/** Picks the best entry: an exact variant match first, else the first that matches at all. */
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
