// Which partitions of a GPT disk image systemd uses: the data partition (root, else usr) and its
// verity and signature partitions, or a refusal with systemd's reason. Two models, as the lanes
// show them against the real systemd-dissect:
// - 252 ("tiers"): partitions are grouped by architecture (native, secondary, then any other);
//   the first group with a root (else a usr) supplies the data and its verity partitions.
// - 253 and later ("slots", verified on 254, 257 and 262): every designator (root, usr, their
//   verity and signature) keeps on its own the partition of the best architecture, the newest
//   label among equals; then the combination is checked (root and usr of one architecture,
//   no signature without verity, no verity root beside a usr).
// Within either, several partitions of one designator and architecture go by label version
// (strverscmp_improved), noauto partitions are skipped, and every such choice is an ambiguity.
import { ExtctlError } from "../../util/errors.js";
import { strverscmpImproved } from "./strverscmp.js";
import type { Architecture, Designator } from "./partition-types.js";
import { SYSTEMD_FEATURES } from "./systemd-versions.js";
import type { DissectedPartition } from "./ddi.js";

/** From this systemd on, each designator is chosen on its own ("slots"); before, by tiers. */
export const PER_DESIGNATOR_SYSTEMD = SYSTEMD_FEATURES.perDesignatorPartitions.since;

export interface PartitionChoice {
  architecture: Architecture;
  designator: "root" | "usr";
  data: DissectedPartition;
  verity?: DissectedPartition;
  signature?: DissectedPartition;
  /** A usr partition systemd mounts beside the root one. */
  usr?: DissectedPartition;
}

export interface ChoiceContext {
  host: Architecture | undefined;
  secondary: Architecture | undefined;
  systemd: number;
}

const DATA = ["root", "usr"] as const;
const verityOf = (d: "root" | "usr") => `${d}-verity` as Designator;
const sigOf = (d: "root" | "usr") => `${d}-verity-sig` as Designator;

function refuse(why: string): never {
  throw new ExtctlError("format", `systemd refuses this disk image: ${why}`, {
    hint: "rebuild the image with one data partition (root or usr) and its own verity partitions",
  });
}

/**
 * The data partition and its verity partitions as systemd `ctx.systemd` picks them, undefined when
 * the image has no root or usr partition at all (the caller then looks for a generic one).
 */
export function choosePartitions(
  partitions: DissectedPartition[],
  ctx: ChoiceContext,
  ambiguities: string[],
): PartitionChoice | undefined {
  noteDuplicates(partitions, ambiguities);
  const choice =
    ctx.systemd >= PER_DESIGNATOR_SYSTEMD
      ? bySlot(partitions, ctx)
      : byTier(partitions, ctx, ambiguities);
  // The other model's answer, when it differs, is worth knowing across a fleet of versions.
  const other = safely(() =>
    ctx.systemd >= PER_DESIGNATOR_SYSTEMD
      ? byTier(partitions, { ...ctx, systemd: PER_DESIGNATOR_SYSTEMD - 1 }, [])
      : bySlot(partitions, { ...ctx, systemd: PER_DESIGNATOR_SYSTEMD }),
  );
  const describe = (c: PartitionChoice | undefined | Error) =>
    c instanceof Error
      ? `refuses it (${c.message})`
      : c
        ? `uses partition ${c.data.index} ${c.verity ? `with verity partition ${c.verity.index}` : "without verity"}`
        : "finds no data partition";
  const was = describe(choice);
  const otherSays = describe(other);
  if (was !== otherSays)
    ambiguities.push(
      ctx.systemd >= PER_DESIGNATOR_SYSTEMD
        ? `systemd 252 reads this image differently: it ${otherSays}`
        : `systemd ${PER_DESIGNATOR_SYSTEMD} and later read this image differently: they ${otherSays}`,
    );
  if (choice && choice.architecture !== ctx.host && choice.architecture !== ctx.secondary)
    ambiguities.push(
      `the data partition is for ${choice.architecture}, not this host's ${ctx.host ?? "architecture"}; systemd still mounts it`,
    );
  if (choice?.usr)
    ambiguities.push(
      "the image has both a root and a usr data partition; systemd mounts both, extctl checks only root",
    );
  return choice;
}

function safely<T>(f: () => T): T | Error {
  try {
    return f();
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}

function noteDuplicates(partitions: DissectedPartition[], ambiguities: string[]): void {
  const count = new Map<string, number>();
  for (const p of partitions) {
    if (p.noAuto || !p.designator || !p.architecture) continue;
    const key = `${p.designator}-${p.architecture}`;
    count.set(key, (count.get(key) ?? 0) + 1);
  }
  for (const [key, n] of count)
    if (n > 1)
      ambiguities.push(
        `${n} ${key} partitions: systemd picks one by label version, another tool may pick another`,
      );
}

const VERSIONED: readonly string[] = [
  "root",
  "usr",
  "root-verity",
  "usr-verity",
  "root-verity-sig",
  "usr-verity-sig",
];

/** Keeps `p` over `seen` when systemd would: a strictly newer label (strverscmp_improved). */
function newer(p: DissectedPartition, seen: DissectedPartition): boolean {
  return strverscmpImproved(seen.name, p.name) < 0;
}

// ---- 253 and later: one slot per designator ----

function bySlot(partitions: DissectedPartition[], ctx: ChoiceContext): PartitionChoice | undefined {
  const rank = (a: Architecture | undefined) => (a === ctx.host ? 2 : a === ctx.secondary ? 1 : 0);
  const slots = new Map<Designator, DissectedPartition>();
  for (const p of partitions) {
    if (p.noAuto || !p.architecture || !p.designator || !VERSIONED.includes(p.designator)) continue;
    const d = p.designator as Designator;
    const seen = slots.get(d);
    if (!seen) {
      slots.set(d, p);
      continue;
    }
    const c =
      p.architecture === seen.architecture ? 0 : rank(p.architecture) - rank(seen.architecture);
    if (c > 0 || (c === 0 && newer(p, seen))) slots.set(d, p);
  }
  for (const d of DATA) {
    if (!slots.has(d) && (slots.has(verityOf(d)) || slots.has(sigOf(d))))
      refuse(`it has a ${d}-verity or ${d}-verity-sig partition but no ${d} partition`);
    if (slots.has(sigOf(d)) && !slots.has(verityOf(d)))
      refuse(`it has a ${d}-verity-sig partition but no ${d}-verity partition`);
  }
  const root = slots.get("root");
  const usr = slots.get("usr");
  if (root && usr && root.architecture !== usr.architecture)
    refuse(
      `its root partition is for ${root.architecture} and its usr partition for ${usr.architecture}; they must match`,
    );
  if (!root && !usr) return undefined;
  if (slots.has("root-verity")) {
    if (slots.has("usr-verity"))
      refuse("it has verity partitions for both root and usr (one verity partition per image)");
    if (usr)
      refuse(
        "its root partition has dm-verity and there is a separate usr partition (verity on root needs /usr inside it)",
      );
  }
  const designator = root ? "root" : "usr";
  const data = (root ?? usr) as DissectedPartition;
  const verity = slots.get(verityOf(designator));
  const signature = slots.get(sigOf(designator));
  return {
    architecture: data.architecture as Architecture,
    designator,
    data,
    ...(verity ? { verity } : {}),
    ...(signature ? { signature } : {}),
    ...(root && usr ? { usr } : {}),
  };
}

// ---- 252: tiers by architecture ----

function tierOf(
  partitions: DissectedPartition[],
  arch: Architecture,
): Map<Designator, DissectedPartition> {
  const found = new Map<Designator, DissectedPartition>();
  for (const p of partitions) {
    if (p.noAuto || p.architecture !== arch || !p.designator) continue;
    const d = p.designator as Designator;
    const seen = found.get(d);
    if (!seen || (VERSIONED.includes(d) && newer(p, seen))) found.set(d, p);
  }
  return found;
}

function byTier(
  partitions: DissectedPartition[],
  ctx: ChoiceContext,
  ambiguities: string[],
): PartitionChoice | undefined {
  const { host, secondary } = ctx;
  const others = [
    ...new Set(
      partitions
        .filter(
          (p) =>
            !p.noAuto &&
            p.architecture &&
            p.architecture !== host &&
            p.architecture !== secondary &&
            (p.designator === "root" || p.designator === "usr"),
        )
        .map((p) => p.architecture as Architecture),
    ),
  ].sort();
  const tiers: [Architecture, Map<Designator, DissectedPartition>][] = [
    ...(host ? [host] : []),
    ...(secondary ? [secondary] : []),
    ...others,
  ].map((a) => [a, tierOf(partitions, a)]);

  // A root partition of any architecture beats a usr one; the tiers go native, secondary, other.
  let architecture: Architecture | undefined;
  let found: Map<Designator, DissectedPartition> | undefined;
  for (const d of DATA) {
    const tier = tiers.find(([, m]) => m.has(d));
    if (tier) {
      [architecture, found] = tier;
      break;
    }
  }
  const withData = tiers.filter(([, m]) => m.has("root") || m.has("usr")).map(([a]) => a);
  if (withData.length > 1)
    ambiguities.push(
      `the image has data partitions for ${withData.join(", ")}; systemd uses the ${architecture} ones`,
    );
  for (const d of DATA) {
    // A native or secondary tier before the one with the data that holds only its verity or
    // signature partition is "something off" to systemd.
    for (const [arch, m] of tiers) {
      if (m.has(d) || (arch !== host && arch !== secondary)) break;
      if (m.has(verityOf(d)) || m.has(sigOf(d)))
        refuse(`it has a ${d}-verity partition for ${arch} but no ${d} partition for it`);
    }
    const tier = tiers.find(([, m]) => m.has(d))?.[1];
    if (tier?.has(sigOf(d)) && !tier.has(verityOf(d)))
      refuse(`it has a ${d}-verity-sig partition but no ${d}-verity partition`);
  }
  if (!architecture || !found) return undefined;
  if (architecture !== host && architecture !== secondary) {
    // Seen on 252: a foreign root with a usr of another non-native architecture is refused.
    const strayUsr = tiers.some(([a, m]) => a !== architecture && a !== host && m.has("usr"));
    if (found.has("root") && strayUsr)
      refuse("it has a root and a usr partition of different foreign architectures");
  }
  // 252 takes a usr only from the native tier or from the root's own.
  const usr = found.get("usr") ?? (host ? tiers[0]?.[1].get("usr") : undefined);
  if (found.has("root") && found.has("root-verity") && usr)
    refuse(
      found.has("usr-verity")
        ? "it has verity partitions for both root and usr (one verity partition per image)"
        : "its root partition has dm-verity and there is a separate usr partition (verity on root needs /usr inside it)",
    );
  const designator = found.has("root") ? "root" : "usr";
  const data = found.get(designator) as DissectedPartition;
  const verity = found.get(verityOf(designator));
  const signature = verity ? found.get(sigOf(designator)) : undefined;
  return {
    architecture,
    designator,
    data,
    ...(verity ? { verity } : {}),
    ...(signature ? { signature } : {}),
    ...(designator === "root" && found.get("usr")
      ? { usr: found.get("usr") as DissectedPartition }
      : {}),
  };
}
