// Image policy in systemd's words (root=signed+absent:usr=verity+absent, `*`, `-`, `~`) for the
// partitions a sysext uses, and where a node's policy comes from: flag, extctl config, the
// systemd-sysext unit's drop-ins, a trusted (UKI) boot, or systemd's default (accept all).
import { readdir, stat } from "node:fs/promises";
import type { Context } from "../../util/context.js";
import { READ_CAPS, readInRoot } from "../../util/bounded-read.js";
import { readKernelCmdline } from "../../util/kernel-cmdline.js";
import { ExtctlError } from "../../util/errors.js";

export type PartitionFlag = "verity" | "signed" | "encrypted" | "unprotected" | "unused" | "absent";

const ALL_USE: PartitionFlag[] = [
  "verity",
  "signed",
  "encrypted",
  "unprotected",
  "unused",
  "absent",
];
const FLAG_WORDS: Readonly<Record<string, PartitionFlag[]>> = {
  verity: ["verity"],
  signed: ["signed"],
  encrypted: ["encrypted"],
  unprotected: ["unprotected"],
  unused: ["unused"],
  absent: ["absent"],
  open: ["verity", "signed", "encrypted", "unprotected", "unused", "absent"],
  ignore: ["unused", "absent"],
};
const DESIGNATORS = new Set([
  "root",
  "usr",
  "home",
  "srv",
  "esp",
  "xbootldr",
  "swap",
  "root-verity",
  "root-verity-sig",
  "usr-verity",
  "usr-verity-sig",
  "tmp",
  "var",
]);

export interface ImagePolicy {
  /** The policy as given (or the systemd string a short name stands for). */
  text: string;
  /** signed, verity or any when the policy is one of those for root and usr, else custom. */
  name: "signed" | "verity" | "any" | "custom";
  root: ReadonlySet<PartitionFlag>;
  usr: ReadonlySet<PartitionFlag>;
}

/** extctl's short names and the systemd policies they stand for. */
export const NAMED_POLICIES: Readonly<Record<"signed" | "verity" | "any", string>> = {
  signed: "root=signed+absent:usr=signed+absent",
  verity: "root=verity+signed+absent:usr=verity+signed+absent",
  any: "*",
};

function nameOf(
  root: ReadonlySet<PartitionFlag>,
  usr: ReadonlySet<PartitionFlag>,
): ImagePolicy["name"] {
  const same = (a: ReadonlySet<PartitionFlag>, b: ReadonlySet<PartitionFlag>) =>
    a.size === b.size && [...a].every((f) => b.has(f));
  if (!same(root, usr)) return "custom";
  const uses = (f: PartitionFlag) => root.has(f);
  if (uses("unprotected")) return "any";
  if (uses("verity")) return "verity";
  if (uses("signed")) return "signed";
  return "custom";
}

/**
 * Parses `signed`, `verity`, `any`, or systemd's image-policy syntax. Unknown designators and
 * the read-only/growfs flags are accepted and ignored, as they do not change what loads.
 */
export function parseImagePolicy(input: string): ImagePolicy {
  const text = input.trim();
  if (text === "signed" || text === "verity" || text === "any") {
    const parsed = parseImagePolicy(NAMED_POLICIES[text]);
    return { ...parsed, name: text, text: NAMED_POLICIES[text] };
  }
  const bad = (why: string) =>
    new ExtctlError("usage", `the image policy "${input}" is invalid: ${why}`, {
      hint: "use signed, verity, any, or systemd's syntax such as root=signed+absent:usr=signed+absent",
    });
  let fallback: PartitionFlag[];
  const explicit = new Map<string, PartitionFlag[]>();
  if (text === "*") fallback = ALL_USE;
  else if (text === "-") fallback = ["unused", "absent"];
  else if (text === "~") fallback = ["absent"];
  else {
    // Unlisted partitions default to ignore (unused+absent), as systemd's parser does.
    fallback = ["unused", "absent"];
    if (text.length === 0) throw bad("it is empty");
    for (const part of text.split(":")) {
      const eq = part.indexOf("=");
      if (eq < 0) throw bad(`"${part}" has no "="`);
      const designator = part.slice(0, eq);
      const flags: PartitionFlag[] = [];
      for (const word of part.slice(eq + 1).split("+")) {
        if (word === "" || word.startsWith("read-only-") || word.startsWith("growfs-")) continue;
        const mapped = FLAG_WORDS[word];
        if (!mapped) throw bad(`"${word}" is not a policy flag`);
        flags.push(...mapped);
      }
      if (designator === "") fallback = flags;
      else if (!DESIGNATORS.has(designator))
        throw bad(`"${designator}" is not a partition designator`);
      else explicit.set(designator, flags);
    }
  }
  const root = new Set(explicit.get("root") ?? fallback);
  const usr = new Set(explicit.get("usr") ?? fallback);
  return { text, name: nameOf(root, usr), root, usr };
}

/** How well an image is protected, the way systemd classifies a partition. */
export type Protection = "signed" | "verity" | "unprotected";

/** Whether `policy` lets a `designator` partition with this protection be used. */
export function policyAllows(
  policy: ImagePolicy,
  designator: "root" | "usr",
  protection: Protection,
): boolean {
  const flags = designator === "root" ? policy.root : policy.usr;
  switch (protection) {
    case "signed":
      return flags.has("signed") || flags.has("verity") || flags.has("unprotected");
    case "verity":
      return flags.has("verity") || flags.has("unprotected");
    case "unprotected":
      return flags.has("unprotected");
  }
}

export interface ResolvedPolicy {
  policy: ImagePolicy;
  /** Where it came from: "--policy", a node path, "trusted boot (...)" or "systemd default". */
  source: string;
}

export interface ResolvePolicyOptions {
  /** A file holding the kernel command line to use instead of ROOT/proc/cmdline. */
  cmdlineFile?: string;
  /** Whose unit drop-ins to read: systemd-sysext's (default) or systemd-confext's. */
  kind?: "sysext" | "confext";
}

function dropInDirs(kind: "sysext" | "confext"): string[] {
  return ["/etc", "/run", "/usr/lib"].map((d) => `${d}/systemd/system/systemd-${kind}.service.d`);
}

/** A small text file of the root, resolved inside it and read bounded; undefined when absent. */
async function readOptional(ctx: Context, nodePath: string, what: string) {
  return (await readInRoot(ctx.root, nodePath, { cap: READ_CAPS.config, what }))?.toString("utf8");
}

async function present(ctx: Context, nodePath: string): Promise<boolean> {
  try {
    await stat(await ctx.root.readPath(nodePath));
    return true;
  } catch {
    return false;
  }
}

/** The `--image-policy=` of the last ExecStart= in a unit file, if it sets one. */
export function imagePolicyInUnit(text: string): string | undefined {
  let found: string | undefined;
  // Unit files continue lines with a trailing backslash.
  for (const line of text.replace(/\\\n/g, " ").split("\n")) {
    const m = /^\s*ExecStart\s*=(.*)$/.exec(line);
    if (!m) continue;
    const value = m[1] ?? "";
    if (value.trim() === "") {
      found = undefined;
      continue;
    }
    const p = /--image-policy(?:=|\s+)("([^"]*)"|'([^']*)'|(\S+))/.exec(value);
    found = p ? (p[2] ?? p[3] ?? p[4]) : undefined;
  }
  return found;
}

/** systemd-sysext's drop-ins, masked by name (etc over run over usr/lib) and applied in order. */
async function policyFromDropIns(
  ctx: Context,
  kind: "sysext" | "confext",
): Promise<{ text: string; file: string } | undefined> {
  const byName = new Map<string, string>();
  for (const dir of dropInDirs(kind)) {
    let names: string[] = [];
    try {
      names = await readdir(await ctx.root.readPath(dir));
    } catch {
      continue;
    }
    for (const name of names) {
      if (name.endsWith(".conf") && !byName.has(name)) byName.set(name, `${dir}/${name}`);
    }
  }
  let found: { text: string; file: string } | undefined;
  for (const name of [...byName.keys()].sort()) {
    const file = byName.get(name) as string;
    const text = await readOptional(ctx, file, "a systemd-sysext drop-in");
    if (text === undefined || !/^\s*ExecStart\s*=/m.test(text)) continue;
    const policy = imagePolicyInUnit(text);
    found = policy === undefined ? undefined : { text: policy, file };
  }
  return found;
}

/**
 * The policy systemd-sysext/confext itself runs with: the --image-policy of its unit's
 * drop-ins under the root, or undefined when the unit passes none (systemd's default then).
 */
export async function unitImagePolicy(
  ctx: Context,
  kind: "sysext" | "confext" = "sysext",
): Promise<ResolvedPolicy | undefined> {
  const dropIn = await policyFromDropIns(ctx, kind);
  if (!dropIn) return undefined;
  try {
    return { policy: parseImagePolicy(dropIn.text), source: dropIn.file };
  } catch (e) {
    throw new ExtctlError("config", `${dropIn.file}: ${(e as Error).message}`, { cause: e });
  }
}

/** Whether the node booted a UKI (immucore's rd.immucore.uki or its uki_boot_mode sentinel). */
export async function trustedBoot(
  ctx: Context,
  options: ResolvePolicyOptions = {},
): Promise<string | undefined> {
  const cmdline = (
    await readKernelCmdline(ctx.root, {
      ...(options.cmdlineFile === undefined ? {} : { file: options.cmdlineFile }),
      env: ctx.env,
    })
  )?.text;
  if (
    cmdline !== undefined &&
    cmdline.split(/\s+/).some((w) => w === "rd.immucore.uki" || w.startsWith("rd.immucore.uki="))
  ) {
    return "rd.immucore.uki on the kernel command line";
  }
  // Only its presence counts; never read it.
  if (await present(ctx, "/run/cos/uki_boot_mode")) {
    return "/run/cos/uki_boot_mode exists";
  }
  return undefined;
}

/**
 * The policy extctl applies to images it enables or links at boot, and where it came from:
 * `override` (--policy), else ROOT/etc/extctl/policy, else the systemd-sysext unit's
 * --image-policy, else `signed` on a trusted boot, else systemd's default (`any`).
 */
export async function resolvePolicy(
  ctx: Context,
  override?: string,
  options: ResolvePolicyOptions = {},
): Promise<ResolvedPolicy> {
  if (override !== undefined) return { policy: parseImagePolicy(override), source: "--policy" };
  const configFile = "/etc/extctl/policy";
  const config = await readOptional(ctx, configFile, "the trust policy");
  if (config !== undefined) {
    const line = config
      .split("\n")
      .map((l) => l.replace(/#.*/, "").trim())
      .find((l) => l !== "");
    if (line !== undefined) {
      try {
        return { policy: parseImagePolicy(line), source: configFile };
      } catch (e) {
        throw new ExtctlError("config", `${configFile}: ${(e as Error).message}`, { cause: e });
      }
    }
  }
  const dropIn = await policyFromDropIns(ctx, options.kind ?? "sysext");
  if (dropIn) {
    try {
      return { policy: parseImagePolicy(dropIn.text), source: dropIn.file };
    } catch (e) {
      throw new ExtctlError("config", `${dropIn.file}: ${(e as Error).message}`, { cause: e });
    }
  }
  const trusted = await trustedBoot(ctx, options);
  if (trusted) return { policy: parseImagePolicy("signed"), source: `trusted boot (${trusted})` };
  return { policy: parseImagePolicy("any"), source: "systemd default" };
}

export function describePolicySource(resolved: ResolvedPolicy): string {
  return `${resolved.policy.name} (${resolved.policy.text}) from ${resolved.source}`;
}
