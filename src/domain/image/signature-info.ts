// Reads a verity signature (the JSON of a verity-sig partition, or a .roothash.p7s sidecar) far
// enough to show who signed it. Nothing here verifies anything (inspect asks the trust check).
import { createHash } from "node:crypto";
import { ExtctlError } from "../../util/errors.js";
import { allZero, readExactly, type ByteSource } from "../../util/bytes.js";

const MAX_SIGNATURE_JSON = 4 * 1024 * 1024;

export interface SignatureInfo {
  rootHash?: string;
  /** As recorded in the partition's JSON. */
  certificateFingerprint?: string;
  /** From the certificate embedded in the PKCS#7, when there is one. */
  signer?: { subject: string; issuer: string; fingerprint: string; serial: string };
  status: "unverified";
  /** The DER PKCS#7 itself, for the verifier. */
  pkcs7: Buffer;
}

/** Parses the NUL-padded JSON of a verity-sig partition. */
export async function readSignaturePartition(source: ByteSource): Promise<SignatureInfo> {
  const length = Math.min(source.size, MAX_SIGNATURE_JSON);
  const raw = await readExactly(source, 0, length, "signature partition");
  const nul = raw.indexOf(0);
  const text = raw.subarray(0, nul < 0 ? raw.length : nul).toString("utf8");
  if (nul >= 0 && !allZero(raw.subarray(nul))) {
    throw new ExtctlError("signature", "the signature partition has data after its JSON", {
      hint: "the image is damaged; download or build it again",
    });
  }
  let json: { rootHash?: unknown; certificateFingerprint?: unknown; signature?: unknown };
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    throw new ExtctlError("signature", "the signature partition does not hold valid JSON", {
      hint: "the image is damaged; download or build it again",
    });
  }
  if (typeof json.signature !== "string" || typeof json.rootHash !== "string") {
    throw new ExtctlError(
      "signature",
      "the signature partition's JSON lacks rootHash or signature",
    );
  }
  const pkcs7 = Buffer.from(json.signature, "base64");
  return {
    rootHash: json.rootHash.toLowerCase(),
    ...(typeof json.certificateFingerprint === "string"
      ? { certificateFingerprint: json.certificateFingerprint.toLowerCase() }
      : {}),
    ...(await signerOf(pkcs7)),
    status: "unverified",
    pkcs7,
  };
}

export async function readDetachedSignature(pkcs7: Buffer): Promise<SignatureInfo> {
  return { ...(await signerOf(pkcs7)), status: "unverified", pkcs7 };
}

function nameText(name: {
  typesAndValues: { type: string; value: { valueBlock: { value: unknown } } }[];
}): string {
  const short: Record<string, string> = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "emailAddress",
  };
  return name.typesAndValues
    .map((tv) => `${short[tv.type] ?? tv.type}=${String(tv.value.valueBlock.value)}`)
    .join(", ");
}

/** The first certificate embedded in a PKCS#7 SignedData, if any. */
async function signerOf(pkcs7: Buffer): Promise<{ signer?: NonNullable<SignatureInfo["signer"]> }> {
  const pkijs = await import("pkijs");
  try {
    const ab = pkcs7.buffer.slice(
      pkcs7.byteOffset,
      pkcs7.byteOffset + pkcs7.byteLength,
    ) as ArrayBuffer;
    const content = pkijs.ContentInfo.fromBER(ab);
    const signed = new pkijs.SignedData({ schema: content.content });
    const cert = signed.certificates?.find((c) => c instanceof pkijs.Certificate);
    if (!cert) return {};
    const der = Buffer.from(cert.toSchema().toBER(false));
    return {
      signer: {
        subject: nameText(cert.subject),
        issuer: nameText(cert.issuer),
        fingerprint: createHash("sha256").update(der).digest("hex"),
        serial: Buffer.from(cert.serialNumber.valueBlock.valueHexView).toString("hex"),
      },
    };
  } catch (e) {
    throw new ExtctlError(
      "signature",
      `the signature is not a readable PKCS#7 structure (${(e as Error).message})`,
      {
        hint: "the image is damaged; download or build it again",
      },
    );
  }
}
