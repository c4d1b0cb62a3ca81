// Reads the dm-verity superblock at the start of a hash area (spec/formats.md section 3) for
// inspect: algorithm, block sizes, data blocks, salt and UUID. Verification lives in trust/.
import { ExtctlError } from "../../util/errors.js";
import { readExactly, type ByteSource } from "../../util/bytes.js";

export interface VeritySuperblockInfo {
  version: number;
  hashType: number;
  uuid: string;
  hashAlgorithm: string;
  dataBlockSize: number;
  hashBlockSize: number;
  dataBlocks: number;
  salt: string;
}

function validBlockSize(n: number): boolean {
  return n >= 512 && n <= 1 << 19 && (n & (n - 1)) === 0;
}

/** Returns undefined when the hash area has no superblock (veritysetup --no-superblock). */
export async function readVeritySuperblock(
  source: ByteSource,
): Promise<VeritySuperblockInfo | undefined> {
  if (source.size < 512) return undefined;
  const sb = await readExactly(source, 0, 512, "verity superblock");
  if (sb.toString("latin1", 0, 8) !== "verity\0\0") return undefined;
  const saltSize = sb.readUInt16LE(80);
  const info: VeritySuperblockInfo = {
    version: sb.readUInt32LE(8),
    hashType: sb.readUInt32LE(12),
    uuid: formatUuid(sb.subarray(16, 32)),
    hashAlgorithm: sb.toString("latin1", 32, 64).replace(/\0.*$/s, ""),
    dataBlockSize: sb.readUInt32LE(64),
    hashBlockSize: sb.readUInt32LE(68),
    dataBlocks: Number(sb.readBigUInt64LE(72)),
    salt: sb.subarray(88, 88 + Math.min(saltSize, 256)).toString("hex"),
  };
  if (
    saltSize > 256 ||
    !validBlockSize(info.dataBlockSize) ||
    !validBlockSize(info.hashBlockSize)
  ) {
    throw new ExtctlError(
      "verity",
      "the verity superblock is corrupt (bad salt size or block size)",
      {
        hint: "the image is damaged; download or build it again",
      },
    );
  }
  return info;
}

function formatUuid(b: Buffer): string {
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
