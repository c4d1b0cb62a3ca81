// Identifiers of a built image derived from one seed, as systemd-repart 255+ derives them
// (formats.md section 2), so that equal inputs and seed give byte-identical images.
import { createHash, createHmac } from "node:crypto";
import type { ExtensionKind } from "../store/layout.js";
import { ExtctlError } from "../../util/errors.js";

/** 16 raw bytes as a UUID string, in byte order. */
export function uuidString(raw: Buffer): string {
  const h = raw.subarray(0, 16).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function uuidBytes(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) {
    throw new ExtctlError("usage", `"${uuid}" is not a UUID`, {
      hint: "give 32 hex digits, with or without dashes",
    });
  }
  return Buffer.from(hex, "hex");
}

/** Marks 16 bytes as a random (version 4, RFC 4122 variant) UUID, as sd_id128 does. */
export function asV4(raw: Buffer): string {
  const b = Buffer.from(raw.subarray(0, 16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  return uuidString(b);
}

/** RFC 4122 name-based UUID (version 5, SHA-1). */
export function uuidV5(namespace: string, name: string): string {
  const digest = createHash("sha1").update(uuidBytes(namespace)).update(name, "utf8").digest();
  const b = Buffer.from(digest.subarray(0, 16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x50;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  return uuidString(b);
}

const NAMESPACE_DNS = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

/** AuroraBoot's fixed seed: UUIDv5(DNS namespace, "kairos-sysext" | "kairos-confext"). */
export function defaultSeed(kind: ExtensionKind): string {
  return uuidV5(NAMESPACE_DNS, `kairos-${kind}`);
}

export class SeededIds {
  private readonly key: Buffer;

  constructor(seed: string) {
    this.key = uuidBytes(seed);
  }

  private hmac(data: Buffer | string): Buffer {
    return createHmac("sha256", this.key).update(data).digest();
  }

  diskGuid(): string {
    return asV4(this.hmac("disk-uuid"));
  }

  /** UUID of the `index`-th partition (0-based) of a type. */
  partitionUuid(typeGuid: string, index = 0): string {
    let data = uuidBytes(typeGuid);
    if (index > 0) {
      const n = Buffer.alloc(8);
      n.writeBigUInt64LE(BigInt(index));
      data = Buffer.concat([data, n]);
    }
    return asV4(this.hmac(data));
  }

  veritySalt(): Buffer {
    return this.hmac("verity-salt");
  }

  verityUuid(): string {
    return asV4(this.hmac("verity-uuid"));
  }

  filesystemUuid(): string {
    return asV4(this.hmac("filesystem-uuid"));
  }
}
