// Assembles a Discoverable Disk Image around a filesystem image: GPT, the data partition, its
// dm-verity hash partition and, when signed, the verity-sig partition, laid out as repart does.
import { createHash, type Hash } from "node:crypto";
import { open, stat, type FileHandle } from "node:fs/promises";
import { FileSource, SliceSource, type ByteSource } from "../../util/bytes.js";
import { ExtctlError } from "../../util/errors.js";
import type { Progress } from "../../util/progress.js";
import { partitionTypeGuid, type Architecture, type Designator } from "../image/partition-types.js";
import { buildVerityTree, hashAreaInFile, verityLayout } from "../trust/verity-tree.js";
import { inlineHasher } from "../trust/verity-pool.js";
import {
  encodeGpt,
  ENTRY_SECTORS,
  GPT_READ_ONLY,
  SECTOR,
  type GptEntrySpec,
} from "./gpt-writer.js";
import { SeededIds, uuidString } from "./ids.js";

export const ALIGNMENT = 4096;
/** Where repart puts the first partition: LBA 2048. */
export const FIRST_PARTITION_OFFSET = 1024 * 1024;
export const SIGNATURE_PARTITION_SIZE = 16 * 1024;

const alignUp = (n: number, a = ALIGNMENT) => Math.ceil(n / a) * a;

export interface PlannedPartition {
  designator: Designator;
  offset: number;
  size: number;
}

export interface DdiPlan {
  data: PlannedPartition;
  verity: PlannedPartition;
  signature?: PlannedPartition;
  totalSize: number;
  verityBlockSize: number;
}

/** Where everything goes, from the filesystem's size alone (the hash area size is known ahead). */
export function planDdi(filesystemSize: number, verityBlockSize: number, signed: boolean): DdiPlan {
  const dataSize = alignUp(filesystemSize);
  const layout = verityLayout({
    algorithm: "sha256",
    hashType: 1,
    dataBlockSize: verityBlockSize,
    hashBlockSize: verityBlockSize,
    dataBlocks: dataSize / verityBlockSize,
    salt: Buffer.alloc(32),
  });
  const data = { designator: "root" as const, offset: FIRST_PARTITION_OFFSET, size: dataSize };
  const verity = {
    designator: "root-verity" as const,
    offset: data.offset + data.size,
    size: alignUp(layout.size),
  };
  let end = verity.offset + verity.size;
  let signature: PlannedPartition | undefined;
  if (signed) {
    signature = { designator: "root-verity-sig", offset: end, size: SIGNATURE_PARTITION_SIZE };
    end += signature.size;
  }
  const totalSize = alignUp(end + (ENTRY_SECTORS + 1) * SECTOR);
  return { data, verity, ...(signature ? { signature } : {}), totalSize, verityBlockSize };
}

export interface DdiOptions {
  /** Path of the finished filesystem image (its size must be a multiple of 4096). */
  filesystem: string;
  /** Path to write the DDI to (a temp file the caller renames). */
  output: string;
  architecture: Architecture;
  seed: string;
  verityBlockSize: 512 | 4096;
  /** Makes the verity-sig partition's content for a root hash; no signer, no partition. */
  sign?: (rootHash: string) => Promise<Buffer>;
  /** Called at the start of each stage with a label and its size in bytes. */
  stage?: (label: string, bytes: number) => Progress;
  /**
   * Shifts a file's bytes up by `length` from offset 0 without copying them (fallocate's
   * FALLOC_FL_INSERT_RANGE); resolves false where the filesystem cannot (tmpfs, overlayfs). When
   * it succeeds the DDI is assembled in the filesystem file itself, and `output` is not made.
   */
  insertRange?: (file: string, length: number) => Promise<boolean>;
}

export interface DdiPartitionInfo {
  designator: Designator;
  label: string;
  typeGuid: string;
  uuid: string;
  offset: number;
  size: number;
}

export interface DdiResult {
  /** Where the DDI is: `output`, or `filesystem` when it was assembled in place. */
  path: string;
  rootHash: string;
  size: number;
  sha256: string;
  diskGuid: string;
  partitions: DdiPartitionInfo[];
}

/** Writes bytes at increasing offsets while hashing the whole disk in order, gaps as zeros. */
class SequentialHashedWriter {
  position = 0;
  readonly hash: Hash = createHash("sha256");
  private static readonly ZEROS = Buffer.alloc(1024 * 1024);

  constructor(private readonly handle: FileHandle) {}

  async write(data: Buffer): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(
        data,
        done,
        data.length - done,
        this.position + done,
      );
      done += bytesWritten;
    }
    this.hash.update(data);
    this.position += data.length;
  }

  /** Bytes already on disk at the current position (e.g. the hash area): hash, do not write. */
  account(data: Buffer): void {
    this.hash.update(data);
    this.position += data.length;
  }

  /** Leaves a hole up to `offset`; it reads as zeros. */
  skipTo(offset: number): void {
    if (offset < this.position) throw new ExtctlError("internal", "DDI regions overlap");
    let left = offset - this.position;
    while (left > 0) {
      const n = Math.min(left, SequentialHashedWriter.ZEROS.length);
      this.hash.update(SequentialHashedWriter.ZEROS.subarray(0, n));
      left -= n;
    }
    this.position = offset;
  }
}

const CHUNK = 4 * 1024 * 1024;

/** Partition table entries and GPT for a plan, once the root hash (which names them) is known. */
function layoutFor(options: DdiOptions, plan: DdiPlan, rootHash: Buffer, ids: SeededIds) {
  const typeOf = (d: Designator) => partitionTypeGuid(d, options.architecture);
  const labelOf = (d: Designator) => {
    const [base, ...suffix] = d.split("-");
    return [base, options.architecture, ...suffix].join("-");
  };
  const partitions: DdiPartitionInfo[] = [
    { ...plan.data, uuid: uuidString(rootHash.subarray(0, 16)) },
    { ...plan.verity, uuid: uuidString(rootHash.subarray(16, 32)) },
    ...(plan.signature
      ? [{ ...plan.signature, uuid: ids.partitionUuid(typeOf("root-verity-sig")) }]
      : []),
  ].map((p) => ({
    designator: p.designator,
    label: labelOf(p.designator),
    typeGuid: typeOf(p.designator),
    uuid: p.uuid,
    offset: p.offset,
    size: p.size,
  }));
  const entries: GptEntrySpec[] = partitions.map((p) => ({
    typeGuid: p.typeGuid,
    uuid: p.uuid,
    label: p.label,
    firstLba: p.offset / SECTOR,
    lastLba: (p.offset + p.size) / SECTOR - 1,
    attributes: p.designator === "root-verity-sig" ? 0n : GPT_READ_ONLY,
  }));
  const diskGuid = ids.diskGuid();
  const gpt = encodeGpt({ diskGuid, totalSectors: plan.totalSize / SECTOR, partitions: entries });
  return { partitions, diskGuid, gpt };
}

async function signatureFor(options: DdiOptions, rootHash: string): Promise<Buffer | undefined> {
  const signatureBytes = options.sign ? await options.sign(rootHash) : undefined;
  if (signatureBytes && signatureBytes.length > SIGNATURE_PARTITION_SIZE) {
    throw new ExtctlError("signature", "the signature does not fit its 16 KiB partition");
  }
  return signatureBytes;
}

async function writeAll(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

export async function writeDdi(options: DdiOptions): Promise<DdiResult> {
  const size = (await stat(options.filesystem)).size;
  if (size === 0 || size % ALIGNMENT !== 0) {
    throw new ExtctlError(
      "internal",
      `the filesystem image is ${size} bytes, not a multiple of 4096`,
    );
  }
  const plan = planDdi(size, options.verityBlockSize, options.sign !== undefined);
  // The filesystem is most of the image: moving it up by 1 MiB in place saves writing it twice.
  if (options.insertRange && (await options.insertRange(options.filesystem, plan.data.offset))) {
    return writeDdiInPlace(options, plan, size);
  }
  return writeDdiByCopy(options, plan);
}

/**
 * The filesystem file already holds the data partition at its offset (a hole before it): hash it
 * there, add the hash area, signature and GPTs around it, then hash the finished image in one
 * sequential read. Same bytes as writeDdiByCopy.
 */
async function writeDdiInPlace(
  options: DdiOptions,
  plan: DdiPlan,
  size: number,
): Promise<DdiResult> {
  const ids = new SeededIds(options.seed);
  const fs = await FileSource.open(options.filesystem);
  const out = await open(options.filesystem, "r+");
  try {
    const { tree, signatureBytes, partitions, diskGuid, gpt } = await hashSignAndLayout(
      options,
      plan,
      ids,
      new SliceSource(fs, plan.data.offset, size),
      out,
    );
    await writeAll(out, gpt.primary, 0);
    if (plan.signature && signatureBytes) {
      const padded = Buffer.alloc(plan.signature.size);
      signatureBytes.copy(padded);
      await writeAll(out, padded, plan.signature.offset);
    }
    await out.truncate(plan.totalSize);
    await writeAll(out, gpt.backup, gpt.backupOffset);
    const summing = options.stage?.("assembling the image", plan.totalSize);
    const hash = createHash("sha256");
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (let at = 0; at < plan.totalSize; at += CHUNK) {
      const length = Math.min(CHUNK, plan.totalSize - at);
      const { bytesRead } = await out.read(buffer, 0, length, at);
      if (bytesRead !== length) throw new ExtctlError("io", "the image could not be read back");
      hash.update(buffer.subarray(0, length));
      summing?.tick(length);
    }
    summing?.stop();
    await out.sync();
    return {
      path: options.filesystem,
      rootHash: tree.rootHash,
      size: plan.totalSize,
      sha256: hash.digest("hex"),
      diskGuid,
      partitions,
    };
  } finally {
    await out.close();
    await fs.close();
  }
}

/**
 * What both ways of writing the DDI share: the verity tree of `data` written into `out` at the
 * verity partition, the signature over its root hash, and the GPT that names both.
 */
async function hashSignAndLayout(
  options: DdiOptions,
  plan: DdiPlan,
  ids: SeededIds,
  data: ByteSource,
  out: FileHandle,
) {
  const hashing = options.stage?.("hashing (dm-verity)", data.size);
  const tree = await buildVerityTree(data, hashAreaInFile(out, plan.verity.offset), {
    dataBlockSize: options.verityBlockSize,
    hashBlockSize: options.verityBlockSize,
    salt: ids.veritySalt(),
    uuid: ids.verityUuid(),
    // Hashing on this thread keeps memory flat (worker pools cost ~80 MiB) and is not the
    // bottleneck: mkfs is.
    hasher: inlineHasher,
    ...(hashing ? { progress: hashing } : {}),
  });
  hashing?.stop();
  const signatureBytes = await signatureFor(options, tree.rootHash);
  const layout = layoutFor(options, plan, Buffer.from(tree.rootHash, "hex"), ids);
  return { tree, signatureBytes, ...layout };
}

async function writeDdiByCopy(options: DdiOptions, plan: DdiPlan): Promise<DdiResult> {
  const ids = new SeededIds(options.seed);
  const fs = await FileSource.open(options.filesystem);
  const fsHandle = await open(options.filesystem, "r");
  const out = await open(options.output, "wx+", 0o644);
  try {
    const { tree, signatureBytes, partitions, diskGuid, gpt } = await hashSignAndLayout(
      options,
      plan,
      ids,
      fs,
      out,
    );

    const writer = new SequentialHashedWriter(out);
    await writer.write(gpt.primary);
    writer.skipTo(plan.data.offset);
    const copying = options.stage?.("assembling the image", fs.size);
    // One buffer for the whole copy: fresh ones per chunk pile up until the GC runs.
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (let at = 0; at < fs.size; at += CHUNK) {
      const length = Math.min(CHUNK, fs.size - at);
      const { bytesRead } = await fsHandle.read(buffer, 0, length, at);
      if (bytesRead !== length)
        throw new ExtctlError("io", "the filesystem image shrank while it was copied");
      await writer.write(buffer.subarray(0, length));
      copying?.tick(length);
    }
    copying?.stop();
    writer.skipTo(plan.verity.offset);
    for (let at = 0; at < tree.hashAreaSize; at += CHUNK) {
      const length = Math.min(CHUNK, tree.hashAreaSize - at);
      const buf = Buffer.alloc(length);
      const { bytesRead } = await out.read(buf, 0, length, plan.verity.offset + at);
      if (bytesRead !== length) throw new ExtctlError("io", "the hash area could not be read back");
      writer.account(buf);
    }
    if (plan.signature && signatureBytes) {
      writer.skipTo(plan.signature.offset);
      const padded = Buffer.alloc(plan.signature.size);
      signatureBytes.copy(padded);
      await writer.write(padded);
    }
    writer.skipTo(gpt.backupOffset);
    await writer.write(gpt.backup);
    if (writer.position !== plan.totalSize) throw new ExtctlError("internal", "DDI size mismatch");
    await out.truncate(plan.totalSize);
    await out.sync();
    return {
      path: options.output,
      rootHash: tree.rootHash,
      size: plan.totalSize,
      sha256: writer.hash.digest("hex"),
      diskGuid,
      partitions,
    };
  } finally {
    await out.close();
    await fsHandle.close();
    await fs.close();
  }
}
