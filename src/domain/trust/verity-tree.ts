// dm-verity hash trees, computed and checked exactly as cryptsetup 2.6 lays them out: level 0
// hashes the data blocks, each level above hashes the one below, top level first on disk.
import { randomBytes, randomUUID } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import {
  FileSource,
  readExactly,
  SliceSource,
  type ByteSource,
  type FileRegion,
} from "../../util/bytes.js";
import { ExtctlError } from "../../util/errors.js";
import type { Progress } from "../../util/progress.js";
import {
  blockDigest,
  digestSlotSize,
  hashesPerBlock,
  type BlockHashParams,
} from "./verity-hash.js";
import { createBlockHasher, inlineHasher, type BlockHasher } from "./verity-pool.js";
import {
  VERITY_ALGORITHMS,
  VERITY_SUPERBLOCK_SIZE,
  isPowerOfTwoBlockSize,
  serializeVeritySuperblock,
  type VeritySuperblock,
} from "./verity-superblock.js";

export interface VerityParams {
  algorithm: string;
  hashType: 0 | 1;
  dataBlockSize: number;
  hashBlockSize: number;
  dataBlocks: number;
  salt: Buffer;
}

export interface VerityLevel {
  /** Byte offset of the level inside the hash area (which starts with the superblock). */
  offset: number;
  blocks: number;
}

export interface VerityLayout {
  params: VerityParams;
  digestSize: number;
  hashesPerBlock: number;
  /** Whether the hash area starts with a superblock block. */
  superblock: boolean;
  /** levels[0] hashes the data; the last one is the single top block. */
  levels: VerityLevel[];
  /** Bytes of the whole hash area, superblock included. */
  size: number;
}

/** Inputs below this size are hashed on the calling thread: threads cost more to start. */
const INLINE_LIMIT = 16 * 1024 * 1024;
const CHUNK_BYTES = 4 * 1024 * 1024;

function checkParams(p: VerityParams): number {
  const digestSize = VERITY_ALGORITHMS[p.algorithm];
  if (digestSize === undefined) {
    throw new ExtctlError("usage", `verity hash "${p.algorithm}" is not supported; use sha256`);
  }
  for (const [name, size] of [
    ["data", p.dataBlockSize],
    ["hash", p.hashBlockSize],
  ] as const) {
    if (!isPowerOfTwoBlockSize(size) || size > 4096 * 16) {
      throw new ExtctlError(
        "usage",
        `verity ${name} block size ${size} is not a power of two ≥ 512`,
      );
    }
  }
  if (p.salt.length > 256) throw new ExtctlError("usage", "a verity salt is at most 256 bytes");
  if (!Number.isSafeInteger(p.dataBlocks) || p.dataBlocks < 1) {
    throw new ExtctlError("verity", "a verity tree needs at least one whole data block");
  }
  return digestSize;
}

/** Where every level lives, as veritysetup computes it. */
export function verityLayout(params: VerityParams, superblock = true): VerityLayout {
  const digestSize = checkParams(params);
  const perBlock = hashesPerBlock(params.hashBlockSize, digestSize);
  const sizes: number[] = [];
  for (let s = params.dataBlocks; s > 1;) {
    s = Math.ceil(s / perBlock);
    sizes.push(s);
  }
  let position = superblock
    ? Math.ceil(VERITY_SUPERBLOCK_SIZE / params.hashBlockSize) * params.hashBlockSize
    : 0;
  const levels: VerityLevel[] = new Array<VerityLevel>(sizes.length);
  for (let i = sizes.length - 1; i >= 0; i--) {
    const blocks = sizes[i] as number;
    levels[i] = { offset: position, blocks };
    position += blocks * params.hashBlockSize;
  }
  return { params, digestSize, hashesPerBlock: perBlock, superblock, levels, size: position };
}

function hashParams(layout: VerityLayout, blockSize: number): BlockHashParams {
  const p = layout.params;
  return {
    algorithm: p.algorithm,
    hashType: p.hashType,
    salt: p.salt,
    blockSize,
    hashBlockSize: p.hashBlockSize,
    digestSize: layout.digestSize,
  };
}

/** Where the hash area goes: positional writes, and reads back of levels already written. */
export interface HashAreaTarget {
  writeAt(position: number, data: Buffer): Promise<void>;
  readAt(position: number, length: number): Promise<Buffer>;
}

/** A hash area inside an open file, starting at `offset` (e.g. a verity partition). */
export function hashAreaInFile(handle: FileHandle, offset = 0): HashAreaTarget {
  return {
    async writeAt(position, data) {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await handle.write(
          data,
          done,
          data.length - done,
          offset + position + done,
        );
        done += bytesWritten;
      }
    },
    async readAt(position, length) {
      const buf = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, offset + position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buf.subarray(0, done);
    },
  };
}

/**
 * Whether what `source` reads is a fresh buffer nobody else holds, so the hasher may transfer
 * it or hash it in place. A file's reads are; a BufferSource hands out views of its memory, and
 * a slice or a cache is not known to be either.
 */
function freshReads(source: ByteSource): boolean {
  return source instanceof FileSource;
}

/**
 * Runs `chunks` chunks through the hasher, at most `hasher.concurrency` at a time, handing each
 * result to `consume` in order. Reading the next chunk overlaps hashing of the previous ones.
 */
async function pipeline(
  hasher: BlockHasher,
  chunks: number,
  read: (index: number) => Promise<Buffer>,
  params: BlockHashParams,
  owned: boolean,
  consume: (index: number, hashes: Buffer) => Promise<boolean | void>,
): Promise<void> {
  const inFlight: Promise<Buffer>[] = [];
  let next = 0;
  let consumed = 0;
  // One read always runs ahead: the pool may hash on this thread, and the next chunk should be
  // arriving from the page cache meanwhile, not only after that hashing is done.
  let reading: Promise<Buffer> | undefined = chunks > 0 ? read(next++) : undefined;
  try {
    while (consumed < chunks) {
      while (reading && inFlight.length < Math.max(1, hasher.concurrency)) {
        const data = await reading;
        reading = next < chunks ? read(next++) : undefined;
        inFlight.push(hasher.hash(params, data, owned));
      }
      const hashes = await (inFlight.shift() as Promise<Buffer>);
      if ((await consume(consumed++, hashes)) === false) return;
    }
  } finally {
    // Do not leave rejections unobserved when we stop early, nor a read of the caller's file
    // still running when we return (the caller closes it next).
    for (const p of inFlight) p.catch(() => {});
    await reading?.catch(() => {});
  }
}

/**
 * Hashes `blocks` blocks of a file region in chunks of `per`, at most `hasher.concurrency` at a
 * time, each read by the thread that hashes it; `starting` is told of each chunk as it is sent,
 * `consume` gets the results in order. Returns only when no read is left running: the caller
 * closes the descriptor next.
 */
async function regionPipeline(
  hasher: BlockHasher,
  params: BlockHashParams,
  region: FileRegion,
  blocks: number,
  per: number,
  starting: (index: number, count: number) => void,
  consume: (index: number, hashes: Buffer) => Promise<boolean | void>,
): Promise<void> {
  const chunks = Math.ceil(blocks / per);
  const inFlight: Promise<Buffer>[] = [];
  let next = 0;
  try {
    for (let consumed = 0; consumed < chunks; consumed++) {
      while (next < chunks && inFlight.length < Math.max(1, hasher.concurrency)) {
        const i = next++;
        const count = Math.min(per, blocks - i * per);
        starting(i, count);
        const position = region.position + i * per * params.blockSize;
        inFlight.push(hasher.hashRegion(params, { fd: region.fd, position }, count));
      }
      const hashes = await (inFlight.shift() as Promise<Buffer>);
      if ((await consume(consumed, hashes)) === false) return;
    }
  } finally {
    await Promise.allSettled(inFlight);
  }
}

export interface BuildVerityOptions {
  dataBlockSize?: number;
  hashBlockSize?: number;
  algorithm?: string;
  hashType?: 0 | 1;
  /** Default: 32 random bytes. Give an empty buffer for no salt, or a fixed one to reproduce. */
  salt?: Buffer;
  /** Superblock UUID; default a random v4 UUID. */
  uuid?: string;
  /** Write a superblock before the tree (default true; systemd needs it). */
  superblock?: boolean;
  /** Default: every whole data block of the source. */
  dataBlocks?: number;
  /** Threads to hash with; default a pool of one per core for inputs over 16 MiB. */
  hasher?: BlockHasher;
  progress?: Progress;
}

export interface VerityTree {
  /** Lowercase hex. */
  rootHash: string;
  salt: Buffer;
  uuid: string;
  superblock: VeritySuperblock;
  /** The superblock's 512 bytes (also written to the hash area when asked). */
  superblockBytes: Buffer;
  /** Bytes written to the hash area, superblock included. */
  hashAreaSize: number;
  layout: VerityLayout;
}

function isHashAreaTarget(x: HashAreaTarget | FileHandle): x is HashAreaTarget {
  return typeof (x as HashAreaTarget).writeAt === "function";
}

/**
 * Computes the hash tree of `data` and writes the hash area (superblock, then levels top first)
 * to `out`. Streams: memory stays a few chunks whatever the size of the data.
 */
export async function buildVerityTree(
  data: ByteSource,
  out: HashAreaTarget | FileHandle,
  options: BuildVerityOptions = {},
): Promise<VerityTree> {
  const target = isHashAreaTarget(out) ? out : hashAreaInFile(out);
  const dataBlockSize = options.dataBlockSize ?? 4096;
  const params: VerityParams = {
    algorithm: options.algorithm ?? "sha256",
    hashType: options.hashType ?? 1,
    dataBlockSize,
    hashBlockSize: options.hashBlockSize ?? dataBlockSize,
    dataBlocks: options.dataBlocks ?? Math.floor(data.size / dataBlockSize),
    salt: options.salt ?? randomBytes(32),
  };
  if (params.dataBlocks * dataBlockSize > data.size) {
    throw new ExtctlError(
      "verity",
      `the data holds ${data.size} bytes, fewer than ${params.dataBlocks} blocks of ${dataBlockSize}`,
    );
  }
  const withSuperblock = options.superblock ?? true;
  const layout = verityLayout(params, withSuperblock);
  const uuid = options.uuid ?? randomUUID();
  const superblock: VeritySuperblock = {
    version: 1,
    hashType: params.hashType,
    uuid,
    algorithm: params.algorithm,
    dataBlockSize: params.dataBlockSize,
    hashBlockSize: params.hashBlockSize,
    dataBlocks: params.dataBlocks,
    salt: params.salt,
  };
  const superblockBytes = serializeVeritySuperblock(superblock);
  if (withSuperblock) {
    const first = Buffer.alloc(layout.levels.at(-1)?.offset ?? layout.size);
    superblockBytes.copy(first);
    await target.writeAt(0, first);
  }
  const dataBytes = params.dataBlocks * dataBlockSize;
  const ownHasher = options.hasher === undefined;
  const hasher = options.hasher ?? (dataBytes > INLINE_LIMIT ? createBlockHasher() : inlineHasher);
  let rootHash: Buffer;
  try {
    if (layout.levels.length === 0) {
      rootHash = blockDigest(params, await readExactly(data, 0, dataBlockSize, "data block 0"));
      options.progress?.tick(dataBlockSize);
    } else {
      await hashLevels(
        layout,
        new SliceSource(data, 0, dataBytes),
        freshReads(data),
        target,
        hasher,
        options.progress,
      );
      const top = layout.levels.at(-1) as VerityLevel;
      const topBlock = await target.readAt(top.offset, params.hashBlockSize);
      rootHash = blockDigest(params, topBlock);
    }
  } finally {
    if (ownHasher) await hasher.close();
  }
  return {
    rootHash: rootHash.toString("hex"),
    salt: params.salt,
    uuid,
    superblock,
    superblockBytes,
    hashAreaSize: layout.size,
    layout,
  };
}

/** Whole source blocks per chunk: a multiple of a hash block's digests, about CHUNK_BYTES. */
function chunkBlocks(layout: VerityLayout, blockSize: number): number {
  const group = layout.hashesPerBlock;
  return group * Math.max(1, Math.floor(CHUNK_BYTES / (group * blockSize)));
}

async function hashLevels(
  layout: VerityLayout,
  data: ByteSource,
  dataReadsFresh: boolean,
  target: HashAreaTarget,
  hasher: BlockHasher,
  progress: Progress | undefined,
): Promise<void> {
  const { params } = layout;
  for (let level = 0; level < layout.levels.length; level++) {
    const dest = layout.levels[level] as VerityLevel;
    const blockSize = level === 0 ? params.dataBlockSize : params.hashBlockSize;
    const sourceBlocks =
      level === 0 ? params.dataBlocks : (layout.levels[level - 1] as VerityLevel).blocks;
    const sourceBase = level === 0 ? 0 : (layout.levels[level - 1] as VerityLevel).offset;
    const per = chunkBlocks(layout, blockSize);
    const chunks = Math.ceil(sourceBlocks / per);
    const read = async (i: number) => {
      const count = Math.min(per, sourceBlocks - i * per);
      const offset = i * per * blockSize;
      if (level === 0) {
        const buf = await readExactly(data, offset, count * blockSize, "the data");
        progress?.tick(buf.length);
        return buf;
      }
      const buf = await target.readAt(sourceBase + offset, count * blockSize);
      if (buf.length !== count * blockSize) {
        throw new ExtctlError("io", "the hash area could not be read back while building it");
      }
      return buf;
    };
    const perChunkOut = (per / layout.hashesPerBlock) * params.hashBlockSize;
    const owned = level === 0 && dataReadsFresh;
    const write = async (i: number, hashes: Buffer) => {
      await target.writeAt(dest.offset + i * perChunkOut, hashes);
    };
    const region = level === 0 ? data.fileRegion?.(0, sourceBlocks * blockSize) : undefined;
    if (region) {
      await regionPipeline(
        hasher,
        hashParams(layout, blockSize),
        region,
        sourceBlocks,
        per,
        (_, count) => progress?.tick(count * blockSize),
        write,
      );
    } else {
      await pipeline(hasher, chunks, read, hashParams(layout, blockSize), owned, write);
    }
  }
}

export type VerityCheck =
  | { ok: true; rootHash: string }
  | { ok: false; reason: "roothash-mismatch"; rootHash: string; message: string }
  | {
      ok: false;
      reason: "corrupted-hash-block";
      level: number;
      block: number;
      message: string;
    }
  | { ok: false; reason: "corrupted-block"; block: number; message: string };

export interface CheckVerityOptions {
  /** Hash every hash block and every data block (default: only the top block, no data read). */
  full?: boolean;
  hasher?: BlockHasher;
  /** Ticks with data bytes checked. */
  progress?: Progress;
}

/**
 * Checks a hash area (`hashArea` starts where the superblock is, or the first level when there
 * is none) against `expectedRootHash` and, with `full`, checks every block of it and of `data`.
 * Returns the first failure found, top of the tree first, so a bad data block is only named when
 * the hashes above it are sound.
 */
export async function checkVerityTree(
  data: ByteSource,
  hashArea: ByteSource,
  params: VerityParams,
  expectedRootHash: string,
  options: CheckVerityOptions & { superblock?: boolean } = {},
): Promise<VerityCheck> {
  const layout = verityLayout(params, options.superblock ?? true);
  const dataBytes = params.dataBlocks * params.dataBlockSize;
  if (data.size < dataBytes) {
    throw new ExtctlError(
      "verity",
      `the data is ${data.size} bytes but the verity superblock says ${params.dataBlocks} blocks of ${params.dataBlockSize}`,
      { hint: "the image is truncated; fetch or build it again" },
    );
  }
  if (hashArea.size < layout.size) {
    throw new ExtctlError(
      "verity",
      `the hash area is ${hashArea.size} bytes, shorter than the ${layout.size} its tree needs`,
      { hint: "the image is truncated; fetch or build it again" },
    );
  }
  const expected = expectedRootHash.toLowerCase();
  const top = layout.levels.at(-1);
  const topBlock = top
    ? await readExactly(hashArea, top.offset, params.hashBlockSize, "the top hash block")
    : await readExactly(data, 0, params.dataBlockSize, "data block 0");
  const rootHash = blockDigest(params, topBlock).toString("hex");
  if (rootHash !== expected) {
    return {
      ok: false,
      reason: "roothash-mismatch",
      rootHash,
      message: `the hash tree's root hash is ${rootHash}, not the expected ${expected}`,
    };
  }
  if (!options.full) return { ok: true, rootHash };
  if (!top) {
    options.progress?.tick(params.dataBlockSize);
    return { ok: true, rootHash };
  }
  const ownHasher = options.hasher === undefined;
  const hasher = options.hasher ?? (dataBytes > INLINE_LIMIT ? createBlockHasher() : inlineHasher);
  try {
    for (let level = layout.levels.length - 1; level >= 0; level--) {
      const failure = await checkLevel(
        layout,
        level,
        level === 0 ? data : hashArea,
        hashArea,
        hasher,
        options.progress,
      );
      if (failure) return failure;
    }
  } finally {
    if (ownHasher) await hasher.close();
  }
  return { ok: true, rootHash };
}

/**
 * Hashes the blocks that level `level` describes (data blocks for level 0, the level below
 * otherwise) and compares them, padding included, with what the level holds.
 */
async function checkLevel(
  layout: VerityLayout,
  level: number,
  source: ByteSource,
  hashArea: ByteSource,
  hasher: BlockHasher,
  progress: Progress | undefined,
): Promise<VerityCheck | undefined> {
  const { params } = layout;
  const stored = layout.levels[level] as VerityLevel;
  const below = level === 0 ? undefined : (layout.levels[level - 1] as VerityLevel);
  const blockSize = below ? params.hashBlockSize : params.dataBlockSize;
  const sourceBlocks = below ? below.blocks : params.dataBlocks;
  const sourceBase = below ? below.offset : 0;
  const per = chunkBlocks(layout, blockSize);
  const chunks = Math.ceil(sourceBlocks / per);
  const perChunkOut = (per / layout.hashesPerBlock) * params.hashBlockSize;
  const slot = digestSlotSize(params.hashType, layout.digestSize);
  let failure: VerityCheck | undefined;
  const storedReads = new Map<number, Promise<Buffer>>();
  // The stored hashes of a chunk are read alongside its blocks, not after they are hashed.
  const readStored = (i: number) => {
    const count = Math.min(per, sourceBlocks - i * per);
    const storedRead = readExactly(
      hashArea,
      stored.offset + i * perChunkOut,
      Math.ceil(count / layout.hashesPerBlock) * params.hashBlockSize,
      `hash level ${level}`,
    );
    storedRead.catch(() => {});
    storedReads.set(i, storedRead);
    return count;
  };
  const compare = async (i: number, computed: Buffer) => {
    const storedBytes = await (storedReads.get(i) as Promise<Buffer>);
    storedReads.delete(i);
    if (storedBytes.equals(computed)) return true;
    let at = 0;
    while (storedBytes[at] === computed[at]) at++;
    const hashBlock = Math.floor(at / params.hashBlockSize);
    const inBlock = at % params.hashBlockSize;
    const index = hashBlock * layout.hashesPerBlock + Math.floor(inBlock / slot);
    const sourceBlock = i * per + index;
    if (inBlock >= layout.hashesPerBlock * slot || sourceBlock >= sourceBlocks) {
      const block = i * (per / layout.hashesPerBlock) + hashBlock;
      failure = {
        ok: false,
        reason: "corrupted-hash-block",
        level,
        block,
        message: `hash block ${block} of level ${level} has non-zero bytes in its spare area`,
      };
    } else if (below) {
      failure = {
        ok: false,
        reason: "corrupted-hash-block",
        level: level - 1,
        block: sourceBlock,
        message: `hash block ${sourceBlock} of level ${level - 1} does not match its hash`,
      };
    } else {
      failure = {
        ok: false,
        reason: "corrupted-block",
        block: sourceBlock,
        message: `data block ${sourceBlock} (bytes ${sourceBlock * params.dataBlockSize}..${(sourceBlock + 1) * params.dataBlockSize - 1}) does not match its hash`,
      };
    }
    return false;
  };
  // Data in a file is read by the hashing threads themselves; anything else through here.
  const region = below ? undefined : source.fileRegion?.(sourceBase, sourceBlocks * blockSize);
  if (region) {
    await regionPipeline(
      hasher,
      hashParams(layout, blockSize),
      region,
      sourceBlocks,
      per,
      (i, count) => {
        readStored(i);
        progress?.tick(count * blockSize);
      },
      compare,
    );
  } else {
    const read = async (i: number) => {
      const count = readStored(i);
      const buf = await readExactly(
        source,
        sourceBase + i * per * blockSize,
        count * blockSize,
        below ? `hash level ${level - 1}` : "the data",
      );
      if (!below) progress?.tick(buf.length);
      return buf;
    };
    await pipeline(
      hasher,
      chunks,
      read,
      hashParams(layout, blockSize),
      freshReads(source),
      compare,
    );
  }
  // Stopped early: the stored hashes read ahead must land before the caller closes the file.
  await Promise.allSettled(storedReads.values());
  return failure;
}
