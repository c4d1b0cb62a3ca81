// The inner loop of dm-verity: digests of consecutive blocks packed into hash blocks exactly as
// cryptsetup lays them out. Shared by the main thread and the hashing workers, so it stays small.
import crypto from "node:crypto";
import { readSync, readvSync } from "node:fs";

export interface BlockHashParams {
  algorithm: string;
  /** 1: H(salt || block); 0 (Chrome OS): H(block || salt). */
  hashType: 0 | 1;
  salt: Buffer;
  /** Size of the blocks being hashed (data blocks for level 0, hash blocks above). */
  blockSize: number;
  hashBlockSize: number;
  digestSize: number;
}

/** How many digests one hash block holds: a power of two, as cryptsetup rounds it down. */
export function hashesPerBlock(hashBlockSize: number, digestSize: number): number {
  return 2 ** Math.floor(Math.log2(hashBlockSize / digestSize));
}

/** Bytes one digest takes in a hash block: type 1 pads it to a power of two, type 0 does not. */
export function digestSlotSize(hashType: 0 | 1, digestSize: number): number {
  return hashType === 1 ? 2 ** Math.ceil(Math.log2(digestSize)) : digestSize;
}

/**
 * One-shot digest as a latin1 ("binary") string, one char per byte. Per 4 KiB block the call's overhead is
 * what separates Node from openssl: crypto.hash() (Node ≥ 20.12) skips the Hash object, and a
 * latin1 string is far cheaper to make than a Buffer (≈2.6 µs against ≈3.3 µs a block here).
 * createHash() is the fallback for a Node without crypto.hash.
 */
const digestLatin1: (algorithm: string, data: Uint8Array) => string =
  typeof crypto.hash === "function"
    ? (algorithm, data) => crypto.hash(algorithm, data, "binary")
    : (algorithm, data) => crypto.createHash(algorithm).update(data).digest("binary");

/** Digest of one block with the salt where the hash type puts it. */
export function blockDigest(
  params: Pick<BlockHashParams, "algorithm" | "hashType" | "salt">,
  block: Buffer,
): Buffer {
  if (params.salt.length === 0) return Buffer.from(digestLatin1(params.algorithm, block), "latin1");
  const joined =
    params.hashType === 1
      ? Buffer.concat([params.salt, block])
      : Buffer.concat([block, params.salt]);
  return Buffer.from(digestLatin1(params.algorithm, joined), "latin1");
}

/**
 * Hashes the whole blocks of `data` (a trailing partial block is zero-filled, as the kernel
 * never sees one) and returns them as hash blocks: digests in slots, each hash block
 * zero-padded. `data` should hold a multiple of hashesPerBlock blocks except at the very end.
 *
 * With `scratch` true the caller gives `data` up (it is a fresh read or a transferred copy): the
 * salt is then written over the already hashed neighbour of each block, so every block is hashed
 * where it lies, with no copy. Otherwise `data` is left as it was.
 */
export function hashBlocksToHashBlocks(
  params: BlockHashParams,
  data: Buffer,
  scratch = false,
): Buffer {
  const { blockSize, hashBlockSize, digestSize, salt, algorithm } = params;
  const perBlock = hashesPerBlock(hashBlockSize, digestSize);
  const slot = digestSlotSize(params.hashType, digestSize);
  const blocks = Math.ceil(data.length / blockSize);
  const whole = Math.floor(data.length / blockSize);
  const groups = Math.ceil(blocks / perBlock);
  const out = Buffer.alloc(groups * hashBlockSize);
  const ab = data.buffer;
  const base = data.byteOffset;
  const saltFirst = params.hashType === 1;
  const s = salt.length;
  const inPlace = scratch && s > 0;

  // One buffer holding salt and a block side by side, for the blocks hashed out of place.
  const joined = Buffer.alloc(s + blockSize);
  const blockAt = saltFirst ? s : 0;
  salt.copy(joined, saltFirst ? 0 : blockSize);

  const digestAt = (i: number): string => {
    const start = i * blockSize;
    if (i < whole) {
      if (s === 0) return digestLatin1(algorithm, new Uint8Array(ab, base + start, blockSize));
      // In place, the salt goes over the neighbour hashed the turn before: the tail of block
      // i-1 (salt first, blocks in order) or the head of block i+1 (salt last, backwards).
      if (inPlace && saltFirst && i > 0) {
        data.set(salt, start - s);
        return digestLatin1(algorithm, new Uint8Array(ab, base + start - s, s + blockSize));
      }
      if (inPlace && !saltFirst && i < whole - 1) {
        data.set(salt, start + blockSize);
        return digestLatin1(algorithm, new Uint8Array(ab, base + start, blockSize + s));
      }
    }
    const end = Math.min(start + blockSize, data.length);
    if (end - start < blockSize) joined.fill(0, blockAt, blockAt + blockSize);
    joined.set(new Uint8Array(ab, base + start, end - start), blockAt);
    return digestLatin1(algorithm, joined);
  };

  const backwards = inPlace && !saltFirst;
  for (let n = 0; n < groups; n++) {
    const g = backwards ? groups - 1 - n : n;
    const first = g * perBlock;
    const count = Math.min(perBlock, blocks - first);
    const at = g * hashBlockSize;
    if (slot === digestSize) {
      // Digests side by side: one write per hash block is cheaper than one per digest.
      let digests = "";
      if (backwards) for (let k = count - 1; k >= 0; k--) digests = digestAt(first + k) + digests;
      else for (let k = 0; k < count; k++) digests += digestAt(first + k);
      out.write(digests, at, digests.length, "latin1");
    } else if (backwards) {
      for (let k = count - 1; k >= 0; k--)
        out.write(digestAt(first + k), at + k * slot, digestSize, "latin1");
    } else {
      for (let k = 0; k < count; k++)
        out.write(digestAt(first + k), at + k * slot, digestSize, "latin1");
    }
  }
  return out;
}

/** Linux's IOV_MAX: the most buffers one readv takes. */
const IOV_MAX = 1024;

/**
 * A reusable buffer of slots, each a block with the salt beside it where the hash type puts it,
 * filled from a file with readv straight into the block half of each slot: every block is then
 * hashed where it lies, with no copy and no allocation per chunk.
 */
export class BlockSlots {
  private readonly buffer: Buffer;
  /** The block half of each slot: where readv puts the file's bytes. */
  private readonly blocks: Uint8Array[] = [];
  /** Each whole slot: salt and block, the digest's input. */
  private readonly inputs: Uint8Array[] = [];

  constructor(
    readonly params: BlockHashParams,
    readonly capacity: number,
  ) {
    const { blockSize, salt } = params;
    const slot = blockSize + salt.length;
    const saltFirst = params.hashType === 1;
    this.buffer = Buffer.alloc(slot * capacity);
    const ab = this.buffer.buffer;
    const base = this.buffer.byteOffset;
    for (let i = 0; i < capacity; i++) {
      const at = i * slot;
      salt.copy(this.buffer, saltFirst ? at : at + blockSize);
      this.blocks.push(new Uint8Array(ab, base + at + (saltFirst ? salt.length : 0), blockSize));
      this.inputs.push(new Uint8Array(ab, base + at, slot));
    }
  }

  /** Whether these slots can take `blocks` blocks hashed with `params`. */
  fits(params: BlockHashParams, blocks: number): boolean {
    const p = this.params;
    return (
      blocks <= this.capacity &&
      p.blockSize === params.blockSize &&
      p.hashType === params.hashType &&
      p.algorithm === params.algorithm &&
      p.hashBlockSize === params.hashBlockSize &&
      p.salt.equals(params.salt)
    );
  }

  /** Reads `count` whole blocks at `position` of `fd` into the first slots. */
  read(fd: number, position: number, count: number): void {
    const size = this.params.blockSize;
    let i = 0;
    let partial = 0;
    while (i < count) {
      // A short read can stop inside a block: finish that one, then go on with readv.
      const n =
        partial > 0
          ? readSync(fd, this.blocks[i] as Uint8Array, partial, size - partial, position)
          : readvSync(fd, this.blocks.slice(i, Math.min(count, i + IOV_MAX)), position);
      if (n === 0)
        throw new Error(`the file ended at byte ${position}, inside the blocks being hashed`);
      position += n;
      partial += n;
      i += Math.floor(partial / size);
      partial %= size;
    }
  }

  /** The hash blocks of the first `count` slots (see hashBlocksToHashBlocks). */
  hashBlocks(count: number): Buffer {
    const { hashBlockSize, digestSize, algorithm, hashType } = this.params;
    const perBlock = hashesPerBlock(hashBlockSize, digestSize);
    const slot = digestSlotSize(hashType, digestSize);
    const groups = Math.ceil(count / perBlock);
    const out = Buffer.alloc(groups * hashBlockSize);
    for (let g = 0; g < groups; g++) {
      const first = g * perBlock;
      const last = Math.min(first + perBlock, count);
      const at = g * hashBlockSize;
      if (slot === digestSize) {
        let digests = "";
        for (let k = first; k < last; k++)
          digests += digestLatin1(algorithm, this.inputs[k] as Uint8Array);
        out.write(digests, at, digests.length, "latin1");
      } else {
        for (let k = first; k < last; k++)
          out.write(
            digestLatin1(algorithm, this.inputs[k] as Uint8Array),
            at + (k - first) * slot,
            digestSize,
            "latin1",
          );
      }
    }
    return out;
  }
}

/**
 * Reads `count` blocks at `position` of `fd` and returns their hash blocks, reusing `slots` when
 * they fit; returns the slots used, for the next call.
 */
export function hashFileBlocks(
  params: BlockHashParams,
  fd: number,
  position: number,
  count: number,
  slots: BlockSlots | undefined,
): { hashes: Buffer; slots: BlockSlots } {
  const use = slots?.fits(params, count) ? slots : new BlockSlots(params, count);
  use.read(fd, position, count);
  return { hashes: use.hashBlocks(count), slots: use };
}
