// Discovery of what an extension image is, the way systemd's dissect does it: a GPT DDI with
// root/usr (+ verity, signature) partitions by type, a single generic Linux partition, or a bare fs.
import { ExtctlError } from "../../util/errors.js";
import { SliceSource, type ByteSource } from "../../util/bytes.js";
import { hasGpt, readGpt, type GptPartition, type GptTable } from "./gpt.js";
import {
  hostArchitecture,
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
  /** True when the architecture is not the host's (systemd would not use the partition). */
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
  gpt?: Pick<GptTable, "sectorSize" | "diskGuid" | "warnings">;
}

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

/** Orders version-like labels the way systemd's strverscmp does, roughly: digits numerically. */
function labelCompare(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

/**
 * Works out what kind of image `source` is and where its data lives. `preferArchitecture`
 * defaults to the host's; a DDI without a partition for it falls back to the one architecture it
 * has and marks it foreign, so `inspect` can still show it and `check` can refuse it.
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
  if (!(await hasGpt(source))) {
    const filesystem = await detectFilesystem(source);
    if (filesystem === "unknown") {
      throw new ExtctlError(
        "format",
        "the image is neither a GPT disk image nor a known filesystem (squashfs, erofs, ext4, btrfs)",
        { hint: "check that the file is a sysext/confext image and not truncated or compressed" },
      );
    }
    return {
      kind: "bare-fs",
      data: { source, offset: 0, size: source.size },
      filesystem,
      partitions: [],
    };
  }

  const gpt = await readGpt(source);
  const partitions = gpt.partitions.map(describe);
  const host = options.architecture ?? hostArchitecture();
  const gptInfo = { sectorSize: gpt.sectorSize, diskGuid: gpt.diskGuid, warnings: gpt.warnings };

  // Candidates per (architecture, designator); root and usr let the newest label win.
  const found = new Map<string, DissectedPartition>();
  for (const p of partitions) {
    if (p.noAuto || !p.architecture || !p.designator) continue;
    const key = `${p.architecture}/${p.designator}`;
    const seen = found.get(key);
    if (!seen) found.set(key, p);
    else if (
      (p.designator === "root" || p.designator === "usr") &&
      labelCompare(p.name, seen.name) > 0
    )
      found.set(key, p);
  }
  const archesWithData = [
    ...new Set(
      [...found.values()]
        .filter((p) => p.designator === "root" || p.designator === "usr")
        .map((p) => p.architecture as Architecture),
    ),
  ];
  let architecture: Architecture | undefined;
  if (host && archesWithData.includes(host)) architecture = host;
  else if (archesWithData.length > 0) architecture = archesWithData.sort()[0];

  if (architecture) {
    const pick = (d: Designator) => found.get(`${architecture}/${d}`);
    const designator = pick("root") ? "root" : "usr";
    const data = pick(designator) as DissectedPartition;
    const verity = pick(`${designator}-verity` as Designator);
    const signature = verity ? pick(`${designator}-verity-sig` as Designator) : undefined;
    const dataSlice = slice(source, data);
    const result: DissectedImage = {
      kind: "ddi",
      architecture,
      foreignArchitecture: host !== architecture,
      designator,
      data: dataSlice,
      filesystem: await detectFilesystem(dataSlice.source),
      partitions,
      gpt: gptInfo,
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
