// Encodes a GUID partition table on 512-byte sectors: protective MBR, primary header and entry
// array at the start, their backup at the end, with the CRC32s firmware and systemd check.
import { crc32 } from "node:zlib";
import { guidToBytes } from "../image/gpt.js";
import { ExtctlError } from "../../util/errors.js";

export const SECTOR = 512;
const ENTRY_COUNT = 128;
const ENTRY_SIZE = 128;
/** Sectors the entry array takes: 128 x 128 bytes = 16 KiB. */
export const ENTRY_SECTORS = (ENTRY_COUNT * ENTRY_SIZE) / SECTOR;
/** First usable LBA after MBR, header and entries. */
export const FIRST_USABLE_LBA = 2 + ENTRY_SECTORS;

export const GPT_READ_ONLY = 1n << 60n;

export interface GptEntrySpec {
  typeGuid: string;
  uuid: string;
  label: string;
  firstLba: number;
  /** Inclusive. */
  lastLba: number;
  attributes?: bigint;
}

export interface GptSpec {
  diskGuid: string;
  /** Size of the whole disk in sectors. */
  totalSectors: number;
  partitions: GptEntrySpec[];
}

export interface EncodedGpt {
  /** Sectors 0 .. FIRST_USABLE_LBA-1: MBR, primary header, entries. */
  primary: Buffer;
  /** The last ENTRY_SECTORS + 1 sectors: backup entries, then the backup header. */
  backup: Buffer;
  /** Byte offset of `backup` in the disk. */
  backupOffset: number;
}

function protectiveMbr(totalSectors: number): Buffer {
  const mbr = Buffer.alloc(SECTOR);
  const e = 446;
  mbr[e + 1] = 0x00;
  mbr[e + 2] = 0x02; // CHS of LBA 1
  mbr[e + 3] = 0x00;
  mbr[e + 4] = 0xee;
  mbr.fill(0xff, e + 5, e + 8);
  mbr.writeUInt32LE(1, e + 8);
  mbr.writeUInt32LE(Math.min(totalSectors - 1, 0xffffffff), e + 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}

function entryArray(partitions: readonly GptEntrySpec[]): Buffer {
  const buf = Buffer.alloc(ENTRY_COUNT * ENTRY_SIZE);
  partitions.forEach((p, i) => {
    const at = i * ENTRY_SIZE;
    guidToBytes(p.typeGuid).copy(buf, at);
    guidToBytes(p.uuid).copy(buf, at + 16);
    buf.writeBigUInt64LE(BigInt(p.firstLba), at + 32);
    buf.writeBigUInt64LE(BigInt(p.lastLba), at + 40);
    buf.writeBigUInt64LE(p.attributes ?? 0n, at + 48);
    const name = Buffer.from(p.label, "utf16le");
    if (name.length > 72) throw new ExtctlError("internal", `partition label too long: ${p.label}`);
    name.copy(buf, at + 56);
  });
  return buf;
}

function header(
  spec: GptSpec,
  current: number,
  backup: number,
  entriesLba: number,
  entriesCrc: number,
): Buffer {
  const lastLba = spec.totalSectors - 1;
  const h = Buffer.alloc(SECTOR);
  h.write("EFI PART", 0, "ascii");
  h.writeUInt32LE(0x00010000, 8);
  h.writeUInt32LE(92, 12);
  h.writeBigUInt64LE(BigInt(current), 24);
  h.writeBigUInt64LE(BigInt(backup), 32);
  h.writeBigUInt64LE(BigInt(FIRST_USABLE_LBA), 40);
  h.writeBigUInt64LE(BigInt(lastLba - ENTRY_SECTORS - 1), 48);
  guidToBytes(spec.diskGuid).copy(h, 56);
  h.writeBigUInt64LE(BigInt(entriesLba), 72);
  h.writeUInt32LE(ENTRY_COUNT, 80);
  h.writeUInt32LE(ENTRY_SIZE, 84);
  h.writeUInt32LE(entriesCrc, 88);
  h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
  return h;
}

export function encodeGpt(spec: GptSpec): EncodedGpt {
  const lastLba = spec.totalSectors - 1;
  const lastUsable = lastLba - ENTRY_SECTORS - 1;
  for (const p of spec.partitions) {
    if (p.firstLba < FIRST_USABLE_LBA || p.lastLba > lastUsable || p.lastLba < p.firstLba) {
      throw new ExtctlError("internal", `partition ${p.label} does not fit the disk`);
    }
  }
  const entries = entryArray(spec.partitions);
  const entriesCrc = crc32(entries);
  const backupEntriesLba = lastLba - ENTRY_SECTORS;
  const primary = Buffer.concat([
    protectiveMbr(spec.totalSectors),
    header(spec, 1, lastLba, 2, entriesCrc),
    entries,
  ]);
  const backup = Buffer.concat([entries, header(spec, lastLba, 1, backupEntriesLba, entriesCrc)]);
  return { primary, backup, backupOffset: backupEntriesLba * SECTOR };
}
