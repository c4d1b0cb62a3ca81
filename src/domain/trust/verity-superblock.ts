// The 512-byte dm-verity superblock that `veritysetup format` puts at the start of a hash area
// (formats.md section 3): read it from untrusted bytes with every field bounded, and write it.
import { ExtctlError } from "../../util/errors.js";

export const VERITY_SUPERBLOCK_SIZE = 512;
const MAGIC = Buffer.from("verity\0\0", "latin1");
export const MAX_SALT_SIZE = 256;

/** Digest algorithms dm-verity images use in practice, with their digest sizes. */
export const VERITY_ALGORITHMS: Readonly<Record<string, number>> = {
  sha1: 20,
  sha256: 32,
  sha512: 64,
};

export interface VeritySuperblock {
  version: number;
  /** 1 = salt before the block (normal); 0 = Chrome OS style, salt after. */
  hashType: 0 | 1;
  /** Lowercase hex with dashes, as veritysetup prints it. */
  uuid: string;
  algorithm: string;
  dataBlockSize: number;
  hashBlockSize: number;
  dataBlocks: number;
  salt: Buffer;
}

export function isPowerOfTwoBlockSize(n: number): boolean {
  return Number.isInteger(n) && n >= 512 && n <= 65536 && (n & (n - 1)) === 0;
}

export function formatUuid(raw: Buffer): string {
  const h = raw.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function parseUuid(text: string): Buffer {
  const hex = text.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) {
    throw new ExtctlError("usage", `"${text}" is not a UUID; give 32 hex digits, dashes allowed`);
  }
  return Buffer.from(hex, "hex");
}

/** True when the bytes start with the verity superblock magic. */
export function hasVerityMagic(block: Buffer): boolean {
  return block.length >= MAGIC.length && block.subarray(0, MAGIC.length).equals(MAGIC);
}

/**
 * Parses a superblock; `what` names the image in error messages. Refuses anything the kernel
 * would refuse, so a later full check never loops over absurd sizes.
 */
export function parseVeritySuperblock(block: Buffer, what: string): VeritySuperblock {
  const fail = (why: string) =>
    new ExtctlError("verity", `${what}: the dm-verity superblock is invalid: ${why}`, {
      hint: "rebuild the hash area with `veritysetup format` or `extctl build`",
    });
  if (block.length < VERITY_SUPERBLOCK_SIZE) throw fail("it is shorter than 512 bytes");
  if (!hasVerityMagic(block)) throw fail('the magic "verity" is missing');
  const version = block.readUInt32LE(8);
  if (version !== 1) throw fail(`version ${version} is not 1`);
  const hashType = block.readUInt32LE(12);
  if (hashType !== 0 && hashType !== 1) throw fail(`hash type ${hashType} is not 0 or 1`);
  const algoEnd = block.indexOf(0, 32);
  const algorithm = block
    .subarray(32, algoEnd < 0 || algoEnd > 64 ? 64 : algoEnd)
    .toString("latin1")
    .toLowerCase();
  if (VERITY_ALGORITHMS[algorithm] === undefined) {
    throw fail(`the hash algorithm "${algorithm}" is not supported (use sha256)`);
  }
  const dataBlockSize = block.readUInt32LE(64);
  const hashBlockSize = block.readUInt32LE(68);
  if (!isPowerOfTwoBlockSize(dataBlockSize)) throw fail(`data block size ${dataBlockSize}`);
  if (!isPowerOfTwoBlockSize(hashBlockSize)) throw fail(`hash block size ${hashBlockSize}`);
  const dataBlocksBig = block.readBigUInt64LE(72);
  if (dataBlocksBig > BigInt(Number.MAX_SAFE_INTEGER) / BigInt(dataBlockSize)) {
    throw fail(`${dataBlocksBig} data blocks is more than any disk holds`);
  }
  const saltSize = block.readUInt16LE(80);
  if (saltSize > MAX_SALT_SIZE) throw fail(`salt size ${saltSize} is over 256`);
  return {
    version,
    hashType,
    uuid: formatUuid(block.subarray(16, 32)),
    algorithm,
    dataBlockSize,
    hashBlockSize,
    dataBlocks: Number(dataBlocksBig),
    salt: Buffer.from(block.subarray(88, 88 + saltSize)),
  };
}

/** The superblock's 512 bytes, laid out as veritysetup writes them. */
export function serializeVeritySuperblock(sb: VeritySuperblock): Buffer {
  if (sb.salt.length > MAX_SALT_SIZE) {
    throw new ExtctlError("usage", `a verity salt is at most 256 bytes, not ${sb.salt.length}`);
  }
  const out = Buffer.alloc(VERITY_SUPERBLOCK_SIZE);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(sb.version, 8);
  out.writeUInt32LE(sb.hashType, 12);
  parseUuid(sb.uuid).copy(out, 16);
  out.write(sb.algorithm, 32, 32, "latin1");
  out.writeUInt32LE(sb.dataBlockSize, 64);
  out.writeUInt32LE(sb.hashBlockSize, 68);
  out.writeBigUInt64LE(BigInt(sb.dataBlocks), 72);
  out.writeUInt16LE(sb.salt.length, 80);
  sb.salt.copy(out, 88);
  return out;
}
