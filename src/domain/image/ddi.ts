// The one dissection of an extension image, the way systemd's dissect-image.c does it: a bare
// filesystem superblock first (blkid USAGE=filesystem wins over a partition table), else a GPT
// judged as libblkid does; root before usr, native architecture before the secondary one, of
// several partitions of one designator the newest label (strverscmp_improved), noauto skipped;
// else a single generic Linux partition. Whatever systemd could read another way, or another
// version reads differently, is listed in `ambiguities`, which verity/signed policies refuse.
import { ExtctlError } from "../../util/errors.js";
import { allZero, SliceSource, type ByteSource } from "../../util/bytes.js";
import { hasGpt, readGpt, type GptPartition, type GptTable } from "./gpt.js";
import { choosePartitions, opensGeneric } from "./partition-choice.js";
import { detectFilesystem } from "./filesystem.js";
import { FILESYSTEM_NAMES, type FilesystemType } from "./filesystem-registry.js";
import { NEWEST_SYSTEMD, SYSTEMD_FEATURES } from "./systemd-versions.js";
import {
  hostArchitecture,
  secondaryArchitecture,
  partitionTypeOf,
  LINUX_GENERIC_GUID,
  type Architecture,
} from "./partition-types.js";

export type ImageKind = "ddi" | "single-partition" | "bare-fs";
export type { FilesystemType };

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
}

/**
 * Why systemd `version` cannot dissect `image` at all, or undefined when it can. Such an image
 * makes its whole refresh fail, so it never merges, whatever the policy.
 */
export function unreadableBySystemd(image: DissectedImage, version: number): string | undefined {
  const needs = image.requiresSystemd;
  if (needs && version < needs.version) return `systemd ${version} cannot read it: ${needs.reason}`;
  return undefined;
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

/**
 * systemd loads the chosen signature partition while it dissects: NUL-padded JSON with rootHash
 * and signature. One it cannot load makes it refuse the whole image (a second, newer-labelled
 * signature partition full of other bytes, say).
 */
async function checkSignatureLoads(source: ByteSource, sig: DissectedPartition): Promise<void> {
  const raw = await source.readAt(sig.offset, Math.min(sig.size, MAX_SIGNATURE_PARTITION));
  const nul = raw.indexOf(0);
  let ok = nul < 0 || allZero(raw.subarray(nul));
  if (ok) {
    try {
      const json = JSON.parse(raw.subarray(0, nul < 0 ? raw.length : nul).toString("utf8")) as {
        rootHash?: unknown;
        signature?: unknown;
      };
      ok = typeof json.rootHash === "string" && typeof json.signature === "string";
      if (ok && !isSystemdHex(json.rootHash as string))
        throw new ExtctlError(
          "format",
          `systemd refuses this disk image: the rootHash ${JSON.stringify(json.rootHash)} in its signature partition ${sig.index} is not plain hex (systemd reads hex digits only, no 0x)`,
          { hint: "sign the image again; the rootHash is the lowercase hex root hash" },
        );
    } catch (e) {
      if (e instanceof ExtctlError) throw e;
      ok = false;
    }
  }
  if (!ok)
    throw new ExtctlError(
      "format",
      `systemd refuses this disk image: its signature partition ${sig.index} ("${sig.name}") does not hold the NUL-padded JSON it loads`,
    );
}

/**
 * What systemd's unhexmem accepts (252 to 262): pairs of hex digits in either case, whitespace
 * anywhere skipped; a "0x" prefix or an odd digit count fails the whole image (seen on 252).
 */
export function isSystemdHex(text: string): boolean {
  const digits = text.replace(/[ \t\n\r]/g, "");
  return /^[0-9a-fA-F]*$/.test(digits) && digits.length % 2 === 0;
}

/** The most of a signature partition read (systemd caps it at a few MiB too). */
const MAX_SIGNATURE_PARTITION = 4 * 1024 * 1024;

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
  options: {
    architecture?: Architecture;
    systemd?: number;
    /** False as with SYSTEMD_DISSECT_VERITY_EMBEDDED=0: systemd never loads the signature partition. */
    embeddedVerity?: boolean;
  } = {},
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
        `the image is neither a GPT disk image nor a known filesystem (${FILESYSTEM_NAMES})`,
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
      version: SYSTEMD_FEATURES.gptSectorSizeProbe.since,
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

  const choice = choosePartitions(
    partitions,
    { host, secondary, systemd: options.systemd ?? NEWEST_SYSTEMD },
    ambiguities,
  );
  if (choice) {
    const { architecture, designator, data, verity, signature } = choice;
    for (const other of partitions) {
      if (other !== data && overlaps(other, data))
        ambiguities.push(
          `partition ${other.index} (${other.typeName}) overlaps the data partition ${data.index}`,
        );
    }
    if (signature && options.embeddedVerity !== false) await checkSignatureLoads(source, signature);
    // systemd mounts a usr partition beside the root too; one without a filesystem fails the
    // whole image (seen on 252, 254, 257 and 262).
    if (choice.usr && (await detectFilesystem(slice(source, choice.usr).source)) === "unknown")
      throw new ExtctlError(
        "format",
        `systemd cannot mount this disk image: its usr partition ${choice.usr.index} beside the root holds no filesystem it knows`,
      );
    const dataSlice = slice(source, data);
    const result: DissectedImage = {
      kind: "ddi",
      architecture,
      // systemd mounts a partition of any architecture it picked, so none is "foreign" (the
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
    opensGeneric(partitions, generic[0] as DissectedPartition);
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
