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
  const missing = devicelessPartitions(partitions);
  opensOthers(partitions, missing);
  for (const p of partitions) {
    if (p.noAuto || !p.architecture || !p.designator || !VERSIONED.includes(p.designator)) continue;
    const d = p.designator as Designator;
    const seen = slots.get(d);
    if (!seen) {
      opens(p, missing);
      slots.set(d, p);
      continue;
    }
    const c =
      p.architecture === seen.architecture ? 0 : rank(p.architecture) - rank(seen.architecture);
    if (c > 0 || (c === 0 && newer(p, seen))) {
      opens(p, missing);
      slots.set(d, p);
    }
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

// ---- 252: three slots per designator (native, secondary, any other architecture) ----

type Tier = "native" | "secondary" | "other";

/**
 * systemd 252's dissect_image: every root/usr designator has a slot for the native architecture,
 * one for the secondary and ONE shared by all other architectures, each filled by the newest
 * label (the first seen among equals). Then the native root wins, else the secondary (its usr
 * comes along, the native usr is dropped), else the other-architecture root (its usr slot
 * replaces the native one, a secondary usr stays); usr is resolved the same way on its own.
 */
function byTier(
  partitions: DissectedPartition[],
  ctx: ChoiceContext,
  ambiguities: string[],
): PartitionChoice | undefined {
  const tierOf = (a: Architecture): Tier =>
    a === ctx.host ? "native" : a === ctx.secondary ? "secondary" : "other";
  const slots = new Map<string, DissectedPartition>();
  const key = (d: Designator, t: Tier) => `${d}/${t}`;
  const missing = devicelessPartitions(partitions);
  opensOthers(partitions, missing);
  for (const p of partitions) {
    if (p.noAuto || !p.architecture || !p.designator || !VERSIONED.includes(p.designator)) continue;
    const k = key(p.designator as Designator, tierOf(p.architecture));
    const seen = slots.get(k);
    if (seen && !newer(p, seen)) continue;
    opens(p, missing);
    slots.set(k, p);
  }
  const otherArchs = [
    ...new Set(
      partitions
        .filter((p) => !p.noAuto && p.architecture && tierOf(p.architecture) === "other")
        .filter((p) => p.designator === "root" || p.designator === "usr")
        .map((p) => p.architecture as Architecture),
    ),
  ];
  if (otherArchs.length > 1)
    ambiguities.push(
      `the image has data partitions for ${otherArchs.join(", ")}; systemd 252 keeps one slot for all of them and takes the newest label`,
    );
  const get = (d: Designator, t: Tier) => slots.get(key(d, t));
  const trio = (d: "root" | "usr") => [d, verityOf(d), sigOf(d)] as Designator[];
  /** Moves tier `from`'s trio of `d` into the native slots (replacing what was there). */
  const promote = (d: "root" | "usr", from: Tier) => {
    for (const x of trio(d)) {
      const p = get(x, from);
      if (p) slots.set(key(x, "native"), p);
      else slots.delete(key(x, "native"));
      slots.delete(key(x, from));
    }
  };
  const drop = (d: "root" | "usr", t: Tier) => trio(d).forEach((x) => slots.delete(key(x, t)));
  const orphan = (d: "root" | "usr", t: Tier) => {
    if (get(verityOf(d), t) || get(sigOf(d), t))
      refuse(
        `it has a ${d}-verity partition for the ${t} architecture but no ${d} partition for it`,
      );
  };

  if (get("root", "native")) {
    for (const t of ["secondary", "other"] as const) {
      drop("root", t);
      drop("usr", t);
    }
  } else {
    orphan("root", "native");
    if (get("root", "secondary")) {
      promote("root", "secondary");
      promote("usr", "secondary");
      drop("root", "other");
      drop("usr", "other");
    } else {
      orphan("root", "secondary");
      if (get("root", "other")) {
        promote("root", "other");
        promote("usr", "other");
      }
    }
  }
  if (get("root-verity-sig", "native") && !get("root-verity", "native"))
    refuse("it has a root-verity-sig partition but no root-verity partition");
  if (get("usr", "native")) {
    drop("usr", "secondary");
    drop("usr", "other");
  } else {
    orphan("usr", "native");
    if (get("usr", "secondary")) {
      promote("usr", "secondary");
      drop("usr", "other");
    } else {
      orphan("usr", "secondary");
      if (get("usr", "other")) promote("usr", "other");
    }
  }
  if (get("usr-verity-sig", "native") && !get("usr-verity", "native"))
    refuse("it has a usr-verity-sig partition but no usr-verity partition");
  const root = get("root", "native");
  const usr = get("usr", "native");
  if (root && usr && root.architecture !== usr.architecture)
    refuse(
      `its root partition is for ${root.architecture} and its usr partition for ${usr.architecture}; they must match`,
    );
  if (!root && !usr) return undefined;
  if (get("root-verity", "native")) {
    if (get("usr-verity", "native"))
      refuse("it has verity partitions for both root and usr (one verity partition per image)");
    if (usr)
      refuse(
        "its root partition has dm-verity and there is a separate usr partition (verity on root needs /usr inside it)",
      );
  }
  const designator = root ? "root" : "usr";
  const data = (root ?? usr) as DissectedPartition;
  const verity = get(verityOf(designator), "native");
  const signature = verity ? get(sigOf(designator), "native") : undefined;
  return {
    architecture: data.architecture as Architecture,
    designator,
    data,
    ...(verity ? { verity } : {}),
    ...(signature ? { signature } : {}),
    ...(root && usr ? { usr } : {}),
  };
}

// ---- partitions the kernel gives no device ----

/**
 * The kernel adds a disk's partitions in table order and refuses one that shares sectors with a
 * partition it already added: that one gets no device node (seen on 252: systemd-dissect fails
 * with "No such file or directory" when it opens it).
 */
export function devicelessPartitions(
  partitions: DissectedPartition[],
): Map<DissectedPartition, DissectedPartition> {
  const added: DissectedPartition[] = [];
  const missing = new Map<DissectedPartition, DissectedPartition>();
  for (const p of [...partitions].sort((a, b) => a.index - b.index)) {
    const clash = added.find((q) => p.firstLba <= q.lastLba && q.firstLba <= p.lastLba);
    if (clash) missing.set(p, clash);
    else added.push(p);
  }
  return missing;
}

/** systemd opens a partition's device as soon as it takes it for a slot: none, no image. */
function opens(p: DissectedPartition, missing: Map<DissectedPartition, DissectedPartition>): void {
  const clash = missing.get(p);
  if (clash)
    refuse(
      `partition ${p.index} (${p.typeName}) shares sectors with partition ${clash.index}, so the kernel makes no device for it and systemd cannot open it`,
    );
}

/** The first esp, xbootldr, home and srv partitions are opened too, whatever is chosen. */
const FIRST_WINS = ["esp", "xbootldr", "home", "srv"];

function opensOthers(
  partitions: DissectedPartition[],
  missing: Map<DissectedPartition, DissectedPartition>,
): void {
  const seen = new Set<string>();
  for (const p of partitions) {
    if (!p.designator || !FIRST_WINS.includes(p.designator) || seen.has(p.designator)) continue;
    if (p.noAuto && p.designator !== "esp") continue;
    seen.add(p.designator);
    opens(p, missing);
  }
}

/** A generic partition systemd falls back to is opened too. */
export function opensGeneric(partitions: DissectedPartition[], generic: DissectedPartition): void {
  opens(generic, devicelessPartitions(partitions));
}
