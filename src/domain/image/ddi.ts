// The one dissection of an extension image, the way systemd's dissect-image.c does it: a bare
// filesystem superblock first (blkid USAGE=filesystem wins over a partition table), else a GPT
// judged as libblkid does; root before usr, native architecture before the secondary one, of
// several partitions of one designator the newest label (strverscmp_improved), noauto skipped;
// else a single generic Linux partition. Whatever systemd could read another way, or another
// version reads differently, is listed in `ambiguities`, which verity/signed policies refuse.
import { ExtctlError } from "../../util/errors.js";
import { SliceSource, type ByteSource } from "../../util/bytes.js";
import { hasGpt, readGpt, type GptPartition, type GptTable } from "./gpt.js";
import { strverscmpImproved } from "./strverscmp.js";
import {
  hostArchitecture,
  secondaryArchitecture,
  partitionTypeOf,
  LINUX_GENERIC_GUID,
  type Architecture,
  type Designator,
} from "./partition-types.js";

export type ImageKind = "ddi" | "single-partition" | "bare-fs";
export type FilesystemType = "squashfs" | "erofs" | "ext4" | "btrfs" | "xfs" | "vfat" | "unknown";

export interface DissectedPartition extends GptPartition {
  /** repart's name for the type (root-x86-64-verity), or the type GUID when unknown. */
  typeName: string;
  designator?: string;
  architecture?: Architecture;
}

/** A byte range of the image with a source reading just that range. */
export interface ImageSlice {
  source: ByteSource;
  offset: number;
  size: number;
  partition?: DissectedPartition;
}

export interface DissectedImage {
  kind: ImageKind;
  /** Architecture of the chosen root/usr partition (DDIs only). */
  architecture?: Architecture;
  /** Always false since systemd 252 mounts the root/usr it picks of any architecture (kept for callers). */
  foreignArchitecture?: boolean;
  /** Which partition role carries the data: "root" or "usr" for DDIs. */
  designator?: "root" | "usr";
  data: ImageSlice;
  verity?: ImageSlice;
  signature?: ImageSlice;
  /** Root hash derived from the data and verity partition UUIDs (repart's convention). */
  rootHashFromUuids?: string;
  filesystem: FilesystemType;
  partitions: DissectedPartition[];
  gpt?: Pick<
    GptTable,
    "sectorSize" | "diskGuid" | "warnings" | "header" | "backupDiffers" | "ignoredEntries"
  >;
  /** True when the data partition is for the host's secondary architecture (x86 on x86-64). */
  secondaryArchitecture?: boolean;
  /**
   * Ways systemd could read this image otherwise than extctl chose (a filesystem that is also
   * a GPT, several candidates for one designator, root and usr data, primary/backup GPT split,
   * overlapping partitions, a sector size old systemd cannot see). Empty when unambiguous.
   * Policies that require verity or a signature refuse an image with any.
   */
  ambiguities: string[];
  /** The oldest systemd that reads the image as dissected here, when older ones do not. */
  requiresSystemd?: { version: number; reason: string };
  /** The first systemd that refuses to dissect the image at all, when older ones read it. */
  refusedSinceSystemd?: { version: number; reason: string };
}

/**
 * Why systemd `version` cannot dissect `image` at all, or undefined when it can. Such an image
 * makes its whole refresh fail, so it never merges, whatever the policy.
 */
export function unreadableBySystemd(image: DissectedImage, version: number): string | undefined {
  const needs = image.requiresSystemd;
  if (needs && version < needs.version) return `systemd ${version} cannot read it: ${needs.reason}`;
  const refused = image.refusedSinceSystemd;
  if (refused && version >= refused.version)
    return `systemd ${version} refuses it: ${refused.reason}`;
  return undefined;
}

/** From this systemd on, an image whose root and usr partitions differ in architecture is refused. */
export const ROOT_USR_ARCH_MATCH_SYSTEMD = 253;

/** systemd versions that changed how an image is dissected (see SYSTEMD_DISSECT_CHANGES). */
export const SYSTEMD_DISSECT_CHANGES: readonly { version: number; change: string }[] = [
  {
    version: 250,
    change:
      "several root/usr partitions of one designator: the newest label wins (strverscmp_improved)",
  },
  {
    version: 252,
    change:
      "observed with systemd-dissect 252: a root/usr of any architecture is used when none is native or secondary; root of any architecture beats usr; filesystem superblock before GPT; GPT validity is libblkid's (backup at the last LBA only when the primary is invalid); sidecars are looked up beside the path systemd-sysext is given (/run/extensions/NAME.raw), never beside the store file",
  },
  {
    version: 254,
    change:
      "loop devices for image files get the GPT's sector size probed (probe_sector_size in dissect-image.c); before, a loop device has 512-byte sectors and a 4096-byte-sector GPT is not seen",
  },
  {
    // Seen refused by systemd-dissect 254 (Debian 12 backports), 257 and 262, read by 252; 253 was
    // not available to try, and the refusal is the safe assumption for it.
    version: ROOT_USR_ARCH_MATCH_SYSTEMD,
    change:
      'a root and a usr partition of different architectures are refused ("No root partition for specified root hash found"); 252 mounts the root and ignores the usr',
  },
];

/** Recognises a filesystem by its superblock magic. */
export async function detectFilesystem(source: ByteSource): Promise<FilesystemType> {
  const head = await source.readAt(0, 4);
  if (head.toString("latin1") === "hsqs") return "squashfs";
  if (head.length >= 4 && head.readUInt32LE(0) === 0x58465342) return "xfs"; // "XFSB" big-endian
  if (source.size >= 1028) {
    const erofs = await source.readAt(1024, 4);
    if (erofs.length === 4 && erofs.readUInt32LE(0) === 0xe0f5e1e2) return "erofs";
  }
  if (source.size >= 1082) {
    const ext = await source.readAt(1080, 2);
    if (ext.length === 2 && ext.readUInt16LE(0) === 0xef53) return "ext4";
  }
  if (source.size >= 0x10048) {
    const btrfs = await source.readAt(0x10040, 8);
    if (btrfs.toString("latin1") === "_BHRfS_M") return "btrfs";
  }
  if (source.size >= 512) {
    const boot = await source.readAt(0, 512);
    if (
      boot.length === 512 &&
      boot.readUInt16LE(510) === 0xaa55 &&
      (boot.toString("latin1", 54, 59) === "FAT12" ||
        boot.toString("latin1", 54, 59) === "FAT16" ||
        boot.toString("latin1", 82, 87) === "FAT32")
    )
      return "vfat";
  }
  return "unknown";
}

function describe(p: GptPartition): DissectedPartition {
  const type = partitionTypeOf(p.typeGuid);
  return {
    ...p,
    typeName: type?.name ?? p.typeGuid,
    ...(type ? { designator: type.designator } : {}),
    ...(type?.architecture ? { architecture: type.architecture } : {}),
  };
}

function slice(parent: ByteSource, p: DissectedPartition): ImageSlice {
  return {
    source: new SliceSource(parent, p.offset, p.size),
    offset: p.offset,
    size: p.size,
    partition: p,
  };
}

const DATA: readonly Designator[] = ["root", "usr"];

/**
 * Picks per designator of one architecture the partition dissect keeps: the first seen, replaced
 * only by a strictly newer label (systemd keeps it when strverscmp_improved(old, new) >= 0).
 * Records an ambiguity when a designator has more than one candidate.
 */
function candidates(
  partitions: DissectedPartition[],
  arch: Architecture,
  ambiguities: string[],
): Map<Designator, DissectedPartition> {
  const found = new Map<Designator, DissectedPartition>();
  const count = new Map<Designator, number>();
  for (const p of partitions) {
    if (p.noAuto || p.architecture !== arch || !p.designator) continue;
    const d = p.designator as Designator;
    count.set(d, (count.get(d) ?? 0) + 1);
    const seen = found.get(d);
    if (!seen) found.set(d, p);
    else if (DATA.includes(d) && strverscmpImproved(seen.name, p.name) < 0) found.set(d, p);
  }
  for (const [d, n] of count) {
    if (n > 1)
      ambiguities.push(
        `${n} ${d}-${arch} partitions: systemd picks the one labelled "${found.get(d)?.name}" by label version, another tool may pick another`,
      );
  }
  return found;
}

function overlaps(a: DissectedPartition, b: DissectedPartition): boolean {
  return a.firstLba <= b.lastLba && b.firstLba <= a.lastLba;
}

/**
 * Works out what kind of image `source` is and where its data lives, as systemd would. The
 * architecture defaults to the host's; a DDI without a partition for it (or its secondary)
 * falls back to the one architecture it has and marks it foreign, so `inspect` can still show
 * it and `check` can refuse it.
 */
export async function dissectImage(
  source: ByteSource,
  options: { architecture?: Architecture } = {},
): Promise<DissectedImage> {
  if (source.size < 4096) {
    throw new ExtctlError(
      "format",
      `the image is only ${source.size} bytes, too small for a filesystem or partition table`,
    );
  }
  const ambiguities: string[] = [];
  const gptPresent = await hasGpt(source);
  // systemd asks libblkid for superblocks and partitions at once and takes a filesystem
  // (USAGE=filesystem) before it looks at PTTYPE: a squashfs that also holds a GPT is a squashfs.
  const bare = await detectFilesystem(source);
  if (bare !== "unknown" || !gptPresent) {
    if (bare === "unknown") {
      throw new ExtctlError(
        "format",
        "the image is neither a GPT disk image nor a known filesystem (squashfs, erofs, ext4, btrfs)",
        { hint: "check that the file is a sysext/confext image and not truncated or compressed" },
      );
    }
    if (gptPresent)
      ambiguities.push(
        `the image is both a ${bare} filesystem and a GPT disk image; systemd mounts the bare ${bare}, the partitions are never used`,
      );
    return {
      kind: "bare-fs",
      data: { source, offset: 0, size: source.size },
      filesystem: bare,
      partitions: [],
      ambiguities,
    };
  }

  const gpt = await readGpt(source);
  const partitions = gpt.partitions.map(describe);
  const host = options.architecture ?? hostArchitecture();
  const secondary = secondaryArchitecture(host);
  const gptInfo = {
    sectorSize: gpt.sectorSize,
    diskGuid: gpt.diskGuid,
    warnings: gpt.warnings,
    header: gpt.header,
    backupDiffers: gpt.backupDiffers,
    ignoredEntries: gpt.ignoredEntries,
  };
  let requiresSystemd: DissectedImage["requiresSystemd"];
  if (gpt.sectorSize === 4096) {
    requiresSystemd = {
      version: 254,
      reason:
        "the GPT uses 4096-byte sectors; systemd before 254 attaches image files as 512-byte-sector loop devices and finds no partition table",
    };
    ambiguities.push(requiresSystemd.reason);
  }
  if (gpt.header === "backup")
    ambiguities.push(
      `the primary GPT is invalid (${gpt.primaryInvalid}); systemd reads the backup table at the last LBA`,
    );
  if (gpt.backupDiffers)
    ambiguities.push("the primary and backup GPT hold different partition entries");

  // A root partition of any architecture beats a usr one; within a designator the native
  // architecture first, then the secondary, then any other (systemd 252 mounts a foreign root when
  // it has nothing better, as the differential test against systemd-dissect shows; the image's
  // extension-release ARCHITECTURE= is what then refuses it).
  const native = host ? candidates(partitions, host, ambiguities) : new Map();
  const second = secondary ? candidates(partitions, secondary, ambiguities) : new Map();
  const otherArches = [
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
  const others = new Map(
    otherArches.map((a) => [a, candidates(partitions, a, ambiguities)] as const),
  );
  const tiers: [Architecture, Map<Designator, DissectedPartition>][] = [
    ...(host ? [[host, native] as [Architecture, Map<Designator, DissectedPartition>]] : []),
    ...(secondary
      ? [[secondary, second] as [Architecture, Map<Designator, DissectedPartition>]]
      : []),
    ...others.entries(),
  ];
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
  if (architecture && architecture !== host && architecture !== secondary) {
    // Observed on systemd 252: a foreign root with a usr of another non-native architecture is refused.
    const strayUsr = tiers.some(([a, m]) => a !== architecture && a !== host && m.has("usr"));
    if (found?.has("root") && strayUsr)
      throw new ExtctlError(
        "format",
        "the disk image has a root and a usr partition of different foreign architectures; systemd refuses it",
      );
    ambiguities.push(
      `the data partition is for ${architecture}, not this host's ${host ?? "architecture"}; systemd still mounts it`,
    );
  }

  // systemd's own refusals (dissect-image.c, in every version tried: 252, 254, 257, 262).
  const refuse = (why: string): never => {
    throw new ExtctlError("format", `systemd refuses this disk image: ${why}`, {
      hint: "rebuild the image with one data partition (root or usr) and its own verity partitions",
    });
  };
  for (const d of DATA) {
    // The first tier with the data partition wins; a native or secondary tier before it that
    // holds only its verity or signature partition is "something off" to systemd.
    for (const [arch, m] of tiers) {
      if (m.has(d) || (arch !== host && arch !== secondary)) break;
      if (m.has(`${d}-verity` as Designator) || m.has(`${d}-verity-sig` as Designator))
        refuse(`it has a ${d}-verity partition for ${arch} but no ${d} partition for it`);
    }
    const tier = tiers.find(([, m]) => m.has(d))?.[1];
    if (tier?.has(`${d}-verity-sig` as Designator) && !tier.has(`${d}-verity` as Designator))
      refuse(`it has a ${d}-verity-sig partition but no ${d}-verity partition`);
  }
  // 252 takes a usr of a foreign architecture only along with a foreign root; from
  // ROOT_USR_ARCH_MATCH_SYSTEMD on, a usr of any architecture is picked on its own.
  const usrAny = tiers.find(([, m]) => m.has("usr"));
  const usrNear = tiers.find(
    ([a, m]) => m.has("usr") && (a === host || a === secondary || a === architecture),
  );
  const rootVerityAndUsr = (usrTier: Map<Designator, DissectedPartition>) =>
    usrTier.has("usr-verity")
      ? "it has verity partitions for both root and usr (one verity partition per image)"
      : "its root partition has dm-verity and there is a separate usr partition (verity on root needs /usr inside it)";
  let refusedSinceSystemd: DissectedImage["refusedSinceSystemd"];
  if (found?.has("root") && found.has("root-verity")) {
    if (usrNear) refuse(rootVerityAndUsr(usrNear[1]));
    else if (usrAny)
      refusedSinceSystemd = {
        version: ROOT_USR_ARCH_MATCH_SYSTEMD,
        reason: `${rootVerityAndUsr(usrAny[1])}: its usr partition is for ${usrAny[0]}, which systemd ${ROOT_USR_ARCH_MATCH_SYSTEMD} and later take into account`,
      };
    if (refusedSinceSystemd) ambiguities.push(refusedSinceSystemd.reason);
  }

  // systemd picks root and usr each on its own (native, secondary, then any architecture) and,
  // since ROOT_USR_ARCH_MATCH_SYSTEMD, refuses the pair when their architectures differ.
  const usrArch = usrAny?.[0];
  if (!refusedSinceSystemd && found?.has("root") && usrArch && usrArch !== architecture) {
    refusedSinceSystemd = {
      version: ROOT_USR_ARCH_MATCH_SYSTEMD,
      reason: `its root partition is for ${architecture} and its usr partition for ${usrArch}; systemd ${ROOT_USR_ARCH_MATCH_SYSTEMD} and later insist that they match`,
    };
    ambiguities.push(refusedSinceSystemd.reason);
  }

  if (architecture && found) {
    const pick = (d: Designator) => found?.get(d);
    const designator = pick("root") ? "root" : "usr";
    if (designator === "root" && pick("usr"))
      ambiguities.push(
        "the image has both a root and a usr data partition; systemd mounts both, extctl checks only root",
      );
    const data = pick(designator) as DissectedPartition;
    const verity = pick(`${designator}-verity` as Designator);
    const signature = verity ? pick(`${designator}-verity-sig` as Designator) : undefined;
    for (const other of partitions) {
      if (other !== data && overlaps(other, data))
        ambiguities.push(
          `partition ${other.index} (${other.typeName}) overlaps the data partition ${data.index}`,
        );
    }
    const dataSlice = slice(source, data);
    const result: DissectedImage = {
      kind: "ddi",
      architecture,
      // systemd 252 mounts a partition of any architecture it picked, so none is "foreign" (the
      // image's ARCHITECTURE= decides); the difference is listed in ambiguities instead.
      foreignArchitecture: false,
      ...(architecture === secondary ? { secondaryArchitecture: true } : {}),
      designator,
      data: dataSlice,
      filesystem: await detectFilesystem(dataSlice.source),
      partitions,
      gpt: gptInfo,
      ambiguities,
      ...(requiresSystemd ? { requiresSystemd } : {}),
      ...(refusedSinceSystemd ? { refusedSinceSystemd } : {}),
    };
    if (verity) {
      result.verity = slice(source, verity);
      result.rootHashFromUuids =
        data.uniqueGuid.replace(/-/g, "") + verity.uniqueGuid.replace(/-/g, "");
    }
    if (signature) result.signature = slice(source, signature);
    return result;
  }

  const generic = partitions.filter((p) => p.typeGuid === LINUX_GENERIC_GUID && !p.noAuto);
  if (generic.length === 1) {
    const data = slice(source, generic[0] as DissectedPartition);
    return {
      kind: "single-partition",
      data,
      filesystem: await detectFilesystem(data.source),
      partitions,
      gpt: gptInfo,
      ambiguities,
      ...(requiresSystemd ? { requiresSystemd } : {}),
    };
  }
  throw new ExtctlError(
    "format",
    generic.length > 1
      ? `the disk image has ${generic.length} generic Linux partitions and no root or /usr partition, so systemd cannot pick one`
      : "the disk image has no root, /usr or generic Linux data partition",
    { hint: "build the image with a root or usr partition of the target architecture" },
  );
}
