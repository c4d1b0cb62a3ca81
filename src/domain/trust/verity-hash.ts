// The inner loop of dm-verity: digests of consecutive blocks packed into hash blocks exactly as
// cryptsetup lays them out. Shared by the main thread and the hashing workers, so it stays tiny.
import { hash } from "node:crypto";

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

/** Digest of one block with the salt where the hash type puts it. */
export function blockDigest(
  params: Pick<BlockHashParams, "algorithm" | "hashType" | "salt">,
  block: Buffer,
): Buffer {
  if (params.salt.length === 0) return hash(params.algorithm, block, "buffer");
  const joined =
    params.hashType === 1
      ? Buffer.concat([params.salt, block])
      : Buffer.concat([block, params.salt]);
  return hash(params.algorithm, joined, "buffer");
}

/**
 * Hashes the whole blocks of `data` (a trailing partial block is zero-filled, as the kernel
 * never sees one) and returns them as hash blocks: digests in slots, each hash block
 * zero-padded. `data` should hold a multiple of hashesPerBlock blocks except at the very end.
 */
export function hashBlocksToHashBlocks(params: BlockHashParams, data: Buffer): Buffer {
  const { blockSize, hashBlockSize, digestSize, salt, algorithm } = params;
  const perBlock = hashesPerBlock(hashBlockSize, digestSize);
  const slot = digestSlotSize(params.hashType, digestSize);
  const blocks = Math.ceil(data.length / blockSize);
  const out = Buffer.alloc(Math.ceil(blocks / perBlock) * hashBlockSize);
  // One scratch buffer holding salt and block side by side: one-shot hashing of it is faster
  // than an incremental hash object per block.
  const scratch = Buffer.alloc(salt.length + blockSize);
  const blockAt = params.hashType === 1 ? salt.length : 0;
  salt.copy(scratch, params.hashType === 1 ? 0 : blockSize);
  for (let i = 0; i < blocks; i++) {
    const start = i * blockSize;
    const end = Math.min(start + blockSize, data.length);
    if (end - start < blockSize) scratch.fill(0, blockAt, blockAt + blockSize);
    data.copy(scratch, blockAt, start, end);
    const digest = hash(algorithm, scratch, "buffer");
    const position = Math.floor(i / perBlock) * hashBlockSize + (i % perBlock) * slot;
    digest.copy(out, position, 0, digestSize);
  }
  return out;
}
