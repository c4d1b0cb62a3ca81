// Root hash signatures as systemd checks them: the verity-sig partition's JSON, and the detached
// PKCS#7 over the lowercase hex root hash, verified against trusted certificates and created.
// pkijs and asn1js are loaded only when a signature is really parsed or made.
import {
  createHash,
  createPrivateKey,
  type KeyObject,
  sign as signBytes,
  verify,
  X509Certificate,
} from "node:crypto";
import type * as Asn1js from "asn1js";
import type * as Pkijs from "pkijs";
import { allZero } from "../../util/bytes.js";
import { ExtctlError } from "../../util/errors.js";
import { DerError } from "./der.js";
import {
  readCertificateIds,
  readSignedData,
  type CertificateIds,
  type SignedDataFields,
  type SignerFields,
  type SignerId,
} from "./signed-data.js";

/** The size repart gives the signature partition; what we pad to. */
export const SIGNATURE_PARTITION_SIZE = 16384;
/** systemd refuses signature JSON bigger than this. */
export const MAX_SIGNATURE_JSON = 4 * 1024 * 1024;

export interface SignaturePartition {
  /** Lowercase hex. */
  rootHash: string;
  /** SHA-256 of the signer's certificate (DER), lowercase hex, when the JSON names it. */
  certificateFingerprint?: string;
  /** DER PKCS#7. */
  signature: Buffer;
}

/**
 * Parses a verity-sig partition: NUL-terminated JSON, only NULs after it. `what` names the
 * image in errors.
 */
export function parseSignaturePartition(bytes: Buffer, what: string): SignaturePartition {
  const fail = (why: string) =>
    new ExtctlError("signature", `${what}: the verity signature partition is invalid: ${why}`, {
      hint: "sign the image again (extctl build --private-key/--certificate or systemd-repart)",
    });
  let end = bytes.indexOf(0);
  if (end < 0) end = bytes.length;
  if (end > MAX_SIGNATURE_JSON) throw fail("its JSON is larger than 4 MiB");
  if (!allZero(bytes.subarray(end))) {
    let i = end;
    while (bytes[i] === 0) i++;
    throw fail(`byte ${i} after the JSON is not NUL`);
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.subarray(0, end).toString("utf8"));
  } catch (e) {
    throw fail(`it is not JSON (${(e as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw fail("its JSON is not an object");
  }
  const fields = value as Record<string, unknown>;
  const rootHash = fields.rootHash;
  if (typeof rootHash !== "string" || !/^([0-9a-fA-F]{2}){16,64}$/.test(rootHash)) {
    throw fail("rootHash is missing or not hex");
  }
  const fingerprint = fields.certificateFingerprint;
  if (
    fingerprint !== undefined &&
    (typeof fingerprint !== "string" || !/^[0-9a-fA-F]{64}$/.test(fingerprint))
  ) {
    throw fail("certificateFingerprint is not a SHA-256 in hex");
  }
  const signature = fields.signature;
  if (typeof signature !== "string" || !/^[A-Za-z0-9+/=\s]+$/.test(signature)) {
    throw fail("signature is missing or not base64");
  }
  const der = Buffer.from(signature, "base64");
  if (der.length === 0) throw fail("signature is empty");
  return {
    rootHash: rootHash.toLowerCase(),
    ...(fingerprint === undefined ? {} : { certificateFingerprint: fingerprint.toLowerCase() }),
    signature: der,
  };
}

/** The partition's bytes: compact JSON as repart writes it, NUL-padded to `padTo`. */
export function serializeSignaturePartition(
  sig: SignaturePartition,
  padTo = SIGNATURE_PARTITION_SIZE,
): Buffer {
  const json = Buffer.from(
    JSON.stringify({
      rootHash: sig.rootHash,
      ...(sig.certificateFingerprint === undefined
        ? {}
        : { certificateFingerprint: sig.certificateFingerprint }),
      signature: sig.signature.toString("base64"),
    }),
    "utf8",
  );
  // At least one NUL ends the JSON; round up to the next multiple of padTo.
  const size = Math.max(padTo, Math.ceil((json.length + 1) / padTo) * padTo);
  const out = Buffer.alloc(size);
  json.copy(out);
  return out;
}

/** What we tell people about a certificate. */
export interface CertificateInfo {
  subject: string;
  issuer: string;
  /** SHA-256 of the DER, lowercase hex. */
  fingerprint: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
}

export function describeCertificate(der: Buffer): CertificateInfo {
  const x = new X509Certificate(der);
  return {
    subject: x.subject.replace(/\n/g, ", "),
    issuer: x.issuer.replace(/\n/g, ", "),
    fingerprint: createHash("sha256").update(der).digest("hex"),
    serialNumber: x.serialNumber.toLowerCase(),
    notBefore: new Date(x.validFrom).toISOString(),
    notAfter: new Date(x.validTo).toISOString(),
  };
}

/** A certificate we trust, and where it came from. */
export interface TrustedCertificate extends CertificateInfo {
  der: Buffer;
  /** Host path of the file, or a label. */
  source: string;
}

export type SignatureCheck =
  | { ok: true; signer: TrustedCertificate }
  | {
      ok: false;
      reason: "untrusted-signer" | "bad-signature";
      message: string;
      /** The certificate the PKCS#7 embeds, when it has one (says who signed). */
      embeddedSigner?: CertificateInfo;
      /** The trusted certificate that matched but whose key did not verify. */
      signer?: TrustedCertificate;
    };

const OID = {
  data: "1.2.840.113549.1.7.1",
  signedData: "1.2.840.113549.1.7.2",
  messageDigest: "1.2.840.113549.1.9.4",
  rsaEncryption: "1.2.840.113549.1.1.1",
  ecPublicKey: "1.2.840.10045.2.1",
  ed25519: "1.3.101.112",
} as const;

const DIGESTS: Readonly<Record<string, string>> = {
  "1.3.14.3.2.26": "sha1",
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
};
const DIGEST_OIDS: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries(DIGESTS).map(([oid, name]) => [name, oid]),
);

/** Signature algorithms that fix their own digest (RSA-with-X, ECDSA-with-X). */
const SIGNATURE_DIGESTS: Readonly<Record<string, string>> = {
  "1.2.840.113549.1.1.5": "sha1",
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.10045.4.1": "sha1",
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
};

function toBuffer(view: ArrayBuffer | Uint8Array): Buffer {
  return view instanceof Uint8Array
    ? Buffer.from(view.buffer, view.byteOffset, view.byteLength)
    : Buffer.from(view);
}

/** What a detached signature covers, for messages. */
export interface DetachedSubject {
  /** "root hash", "catalog". */
  name: string;
  /** How to make a good one. */
  hint: string;
}

const ROOT_HASH: DetachedSubject = {
  name: "root hash",
  hint: "sign the root hash with `openssl smime -sign -noattr -binary -outform der` or extctl build",
};

interface ParsedSignature {
  pkijs: typeof Pkijs;
  signedData: Pkijs.SignedData;
}

let pki: Promise<[typeof Asn1js, typeof Pkijs]> | undefined;

/**
 * asn1js and pkijs, loaded on the first signature and kept: each import() in the CLI bundle
 * builds a fresh namespace object over pkijs's hundreds of exports (~0.2 ms), and a boot
 * checks one signature per image.
 */
function pkiModules(): Promise<[typeof Asn1js, typeof Pkijs]> {
  pki ??= Promise.all([import("asn1js"), import("pkijs")]);
  return pki;
}

async function parsePkcs7(
  der: Buffer,
  what: string,
  subject: DetachedSubject = ROOT_HASH,
): Promise<ParsedSignature> {
  const [asn1js, pkijs] = await pkiModules();
  const fail = (why: string) =>
    new ExtctlError("signature", `${what}: the ${subject.name} signature is not a PKCS#7: ${why}`, {
      hint: subject.hint,
    });
  const asn = asn1js.fromBER(new Uint8Array(der));
  if (asn.offset === -1) throw fail(asn.result.error || "bad DER");
  let signedData: Pkijs.SignedData;
  try {
    const info = new pkijs.ContentInfo({ schema: asn.result });
    if (info.contentType !== OID.signedData) throw new Error(`content type ${info.contentType}`);
    signedData = new pkijs.SignedData({ schema: info.content });
  } catch (e) {
    throw fail((e as Error).message);
  }
  if (signedData.signerInfos.length === 0) throw fail("it has no signer");
  if (signedData.signerInfos.length > 16) throw fail("it has more than 16 signers");
  return { pkijs, signedData };
}

function embeddedCertificates(parsed: ParsedSignature): Pkijs.Certificate[] {
  return (parsed.signedData.certificates ?? []).filter(
    (c): c is Pkijs.Certificate => c instanceof parsed.pkijs.Certificate,
  );
}

function certMatchesSid(
  pkijs: typeof Pkijs,
  cert: Pkijs.Certificate,
  sid: Pkijs.SignerInfo["sid"],
): boolean {
  if (sid instanceof pkijs.IssuerAndSerialNumber) {
    return (
      cert.issuer.isEqual(sid.issuer) &&
      toBuffer(cert.serialNumber.valueBlock.valueHexView).equals(
        toBuffer(sid.serialNumber.valueBlock.valueHexView),
      )
    );
  }
  // A subjectKeyIdentifier sid ([0] IMPLICIT OCTET STRING).
  const wanted = toBuffer(
    (sid as { valueBlock?: { valueHexView?: Uint8Array } }).valueBlock?.valueHexView ??
      new Uint8Array(),
  );
  const ski = cert.extensions?.find((e) => e.extnID === "2.5.29.14");
  if (!ski || wanted.length === 0) return false;
  const parsed = ski.parsedValue as { valueBlock?: { valueHexView?: Uint8Array } } | undefined;
  return toBuffer(parsed?.valueBlock?.valueHexView ?? new Uint8Array()).equals(wanted);
}

/** Converts pkijs's SignerInfo to the fields the check reads (what readSignedData gives). */
function signerFieldsOf(signer: Pkijs.SignerInfo): SignerFields {
  let signedAttributes: SignerFields["signedAttributes"];
  if (signer.signedAttrs && signer.signedAttrs.attributes.length > 0) {
    const md = signer.signedAttrs.attributes.find((a) => a.type === OID.messageDigest);
    const value = md?.values[0] as { valueBlock?: { valueHexView?: Uint8Array } } | undefined;
    const digest = value?.valueBlock?.valueHexView;
    signedAttributes = {
      encoded: toBuffer(signer.signedAttrs.encodedValue),
      ...(digest ? { messageDigest: toBuffer(digest) } : {}),
    };
  }
  return {
    // Not read by signerVerifies; the pkijs path matches signers with its own sid.
    sid: { subjectKeyId: Buffer.alloc(0) },
    digestAlgorithm: signer.digestAlgorithm.algorithmId,
    ...(signedAttributes ? { signedAttributes } : {}),
    signatureAlgorithm: signer.signatureAlgorithm.algorithmId,
    signature: toBuffer(signer.signature.valueBlock.valueHexView),
  };
}

/** Checks one signer's signature with the public key of `certDer` over `content`. */
function signerVerifies(
  signer: SignerFields,
  certDer: Buffer,
  content: Buffer,
  subject: DetachedSubject,
): { ok: boolean; why?: string } {
  const digestName = DIGESTS[signer.digestAlgorithm];
  if (!digestName) return { ok: false, why: `digest ${signer.digestAlgorithm} is not supported` };
  let signedBytes = content;
  if (signer.signedAttributes) {
    // With signed attributes the signature covers them, and they carry the content's digest.
    const expected = createHash(digestName).update(content).digest();
    if (!signer.signedAttributes.messageDigest?.equals(expected)) {
      return { ok: false, why: `the signed digest does not match the ${subject.name}` };
    }
    signedBytes = signer.signedAttributes.encoded;
  }
  const sigAlg = signer.signatureAlgorithm;
  const publicKey = publicKeyOf(certDer);
  let algorithm: string | null = SIGNATURE_DIGESTS[sigAlg] ?? digestName;
  if (sigAlg === OID.ed25519) algorithm = null;
  else if (
    !(sigAlg in SIGNATURE_DIGESTS) &&
    sigAlg !== OID.rsaEncryption &&
    sigAlg !== OID.ecPublicKey
  ) {
    return { ok: false, why: `signature algorithm ${sigAlg} is not supported` };
  }
  try {
    return verify(algorithm, signedBytes, publicKey, signer.signature)
      ? { ok: true }
      : { ok: false, why: "the signature does not verify with the certificate's public key" };
  } catch (e) {
    return { ok: false, why: `the signature cannot be checked (${(e as Error).message})` };
  }
}

/**
 * Per-process caches of what trusted certificates parse to. A boot or list checks many images
 * against the same few certificates; parsing each one again per image was most of boot's CPU.
 * Keyed by the DER itself (certificates are immutable values); bounded, since a long-lived
 * library user may see many trust stores.
 */
const CERT_CACHE_LIMIT = 256;
const parsedCertificates = new Map<string, Pkijs.Certificate | null>();
const publicKeys = new Map<string, KeyObject>();

function remember<V>(cache: Map<string, V>, key: string, value: V): V {
  if (cache.size >= CERT_CACHE_LIMIT) cache.delete(cache.keys().next().value as string);
  cache.set(key, value);
  return value;
}

function publicKeyOf(certDer: Buffer): KeyObject {
  const key = certDer.toString("base64");
  return publicKeys.get(key) ?? remember(publicKeys, key, new X509Certificate(certDer).publicKey);
}

function parsedCertificate(pkijs: typeof Pkijs, der: Buffer): Pkijs.Certificate | null {
  const key = der.toString("base64");
  const cached = parsedCertificates.get(key);
  if (cached !== undefined) return cached;
  let cert: Pkijs.Certificate | null = null;
  try {
    cert = pkijs.Certificate.fromBER(new Uint8Array(der));
  } catch {
    // not a certificate pkijs can read: it can match no signer
  }
  return remember(parsedCertificates, key, cert);
}

const certificateIds = new Map<string, CertificateIds | null>();

function certificateIdsOf(der: Buffer): CertificateIds | null {
  const key = der.toString("base64");
  const cached = certificateIds.get(key);
  if (cached !== undefined) return cached;
  let ids: CertificateIds | null = null;
  try {
    ids = readCertificateIds(der);
  } catch (e) {
    if (!(e instanceof DerError)) throw e;
  }
  return remember(certificateIds, key, ids);
}

/**
 * Whether the certificate `ids` is the one `sid` names, as the pkijs path decides it, or
 * "unsure" where only pkijs can say: it compares issuer names attribute by attribute with
 * string preparation (case and spaces folded), and identical DER is all that is certain here.
 */
function sidNames(ids: CertificateIds | null, sid: SignerId): boolean | "unsure" {
  if (!ids) return "unsure";
  if ("subjectKeyId" in sid)
    return sid.subjectKeyId.length > 0 && ids.subjectKeyId?.equals(sid.subjectKeyId) === true;
  if (!ids.serial.equals(sid.serial)) return false;
  return ids.issuer.equals(sid.issuer) ? true : "unsure";
}

/**
 * The fast path of verifyDetachedSignature: the SignedData read with the strict DER reader,
 * no pkijs. It only ever accepts, and only where the pkijs path would accept with the same
 * trusted certificate: the same signers in the same order, each matched to the first trusted
 * certificate it names, the same verification. Anything else (not strict DER, a name only
 * pkijs can compare, a signature that does not verify) is undefined, and pkijs decides.
 * Exported for the differential tests.
 */
export function acceptedByStrictDer(
  content: Buffer,
  der: Buffer,
  trusted: readonly TrustedCertificate[],
  subject: DetachedSubject = ROOT_HASH,
): SignatureCheck | undefined {
  let signedData: SignedDataFields;
  try {
    signedData = readSignedData(der);
  } catch (e) {
    if (e instanceof DerError) return undefined;
    throw e;
  }
  // The pkijs path refuses these counts outright.
  if (signedData.signers.length === 0 || signedData.signers.length > 16) return undefined;
  // An embedded certificate is only framed by the strict reader; pkijs parses it in full and
  // refuses the whole signature if it cannot. One that is a trusted certificate byte for byte
  // was parsed when the trust store was loaded; any other sends the signature to pkijs.
  if (!signedData.certificates.every((c) => trusted.some((t) => t.der.equals(c)))) return undefined;
  for (const signer of signedData.signers) {
    let match: TrustedCertificate | undefined;
    for (const t of trusted) {
      const names = sidNames(certificateIdsOf(t.der), signer.sid);
      if (names === "unsure") return undefined;
      if (names) {
        match = t;
        break;
      }
    }
    if (match && signerVerifies(signer, match.der, content, subject).ok) {
      return { ok: true, signer: match };
    }
  }
  return undefined;
}

/**
 * Verifies the detached PKCS#7 `der` over the lowercase hex `rootHash` the way systemd's
 * userspace check does (OpenSSL's PKCS7_NOINTERN|PKCS7_NOVERIFY): the signer must be one of
 * `trusted` (certificates embedded in the signature are not trusted by themselves), no chain
 * and no expiry check. `what` names the image in messages.
 */
export async function verifyRootHashSignature(
  rootHash: string,
  der: Buffer,
  trusted: readonly TrustedCertificate[],
  what: string,
): Promise<SignatureCheck> {
  return verifyDetachedSignature(
    Buffer.from(rootHash.toLowerCase(), "latin1"),
    der,
    trusted,
    what,
    ROOT_HASH,
  );
}

/**
 * Verifies the detached PKCS#7 `der` over the exact bytes `content` (a root hash in hex, a
 * catalog file) against `trusted`, with the rules of verifyRootHashSignature. `subject` says
 * what was signed, for messages.
 */
export async function verifyDetachedSignature(
  content: Buffer,
  der: Buffer,
  trusted: readonly TrustedCertificate[],
  what: string,
  subject: DetachedSubject,
): Promise<SignatureCheck> {
  // Not accepted by the strict reader: pkijs decides, and gives the messages of every refusal.
  return (
    acceptedByStrictDer(content, der, trusted, subject) ??
    (await checkWithPkijs(content, der, trusted, what, subject))
  );
}

/**
 * verifyDetachedSignature with pkijs alone: what decided every signature before the strict
 * reader, and still decides all it does not accept. Exported for the differential tests.
 */
export async function checkWithPkijs(
  content: Buffer,
  der: Buffer,
  trusted: readonly TrustedCertificate[],
  what: string,
  subject: DetachedSubject = ROOT_HASH,
): Promise<SignatureCheck> {
  const parsed = await parsePkcs7(der, what, subject);
  const { pkijs, signedData } = parsed;
  const embedded = embeddedCertificates(parsed);
  const trustedParsed = trusted.flatMap((t) => {
    const cert = parsedCertificate(pkijs, t.der);
    return cert ? [{ t, cert }] : [];
  });
  let firstFailure: SignatureCheck | undefined;
  for (const signer of signedData.signerInfos) {
    // Who the signature says signed it matters only for the messages of a failure.
    const describeEmbedded = () => {
      const embeddedCert = embedded.find((c) => certMatchesSid(pkijs, c, signer.sid));
      return embeddedCert
        ? describeCertificate(toBuffer(embeddedCert.toSchema().toBER()))
        : undefined;
    };
    const match = trustedParsed.find(({ cert }) => certMatchesSid(pkijs, cert, signer.sid));
    if (!match) {
      if (firstFailure) continue;
      const embeddedSigner = describeEmbedded();
      const who = embeddedSigner
        ? `"${embeddedSigner.subject}" (SHA-256 ${embeddedSigner.fingerprint})`
        : `issuer/serial ${describeSid(pkijs, signer.sid)} (the signature embeds no certificate)`;
      firstFailure ??= {
        ok: false,
        reason: "untrusted-signer",
        message: `${what} is signed by ${who}, which is none of the ${trusted.length} trusted certificates`,
        ...(embeddedSigner ? { embeddedSigner } : {}),
      };
      continue;
    }
    const result = signerVerifies(signerFieldsOf(signer), match.t.der, content, subject);
    if (result.ok) return { ok: true, signer: match.t };
    if (firstFailure) continue;
    const embeddedSigner = describeEmbedded();
    firstFailure = {
      ok: false,
      reason: "bad-signature",
      message: `${what}: the signature by trusted certificate "${match.t.subject}" (${match.t.source}) is invalid: ${result.why}`,
      signer: match.t,
      ...(embeddedSigner ? { embeddedSigner } : {}),
    };
  }
  return firstFailure as SignatureCheck;
}

function describeSid(pkijs: typeof Pkijs, sid: Pkijs.SignerInfo["sid"]): string {
  if (sid instanceof pkijs.IssuerAndSerialNumber) {
    const issuer = sid.issuer.typesAndValues
      .map((tv) => `${tv.type}=${String(tv.value.valueBlock.value)}`)
      .join(", ");
    return `${issuer} / ${toBuffer(sid.serialNumber.valueBlock.valueHexView).toString("hex")}`;
  }
  return "(subject key identifier)";
}

/** The signer certificates a PKCS#7 embeds (for inspect, before any trust decision). */
export async function signatureCertificates(der: Buffer, what: string): Promise<CertificateInfo[]> {
  const parsed = await parsePkcs7(der, what);
  return embeddedCertificates(parsed).map((c) =>
    describeCertificate(toBuffer(c.toSchema().toBER())),
  );
}

export interface SignedRootHash {
  /** The verity-sig partition contents, NUL-padded to 16 KiB. */
  json: Buffer;
  /** SHA-256 of the signer certificate's DER, lowercase hex. */
  fingerprint: string;
  /** The DER PKCS#7 (also inside `json`); a bare image's NAME.roothash.p7s. */
  signature: Buffer;
}

/** Reads the first certificate of a PEM (or DER) buffer. */
export function certificateDer(certPem: string | Buffer): Buffer {
  try {
    return new X509Certificate(certPem).raw;
  } catch (e) {
    throw new ExtctlError(
      "usage",
      `the certificate is not a PEM or DER X.509 certificate (${(e as Error).message})`,
    );
  }
}

/**
 * Signs a root hash as systemd-repart does (OpenSSL PKCS7_DETACHED|PKCS7_NOATTR|PKCS7_BINARY):
 * detached SignedData over the lowercase hex root hash, no signed attributes, the signer
 * certificate embedded. RSA, EC and Ed25519 keys.
 */
export async function signRootHash(
  rootHashHex: string,
  keyPem: string | Buffer,
  certPem: string | Buffer,
): Promise<SignedRootHash> {
  if (!/^([0-9a-fA-F]{2}){16,64}$/.test(rootHashHex)) {
    throw new ExtctlError("usage", `"${rootHashHex}" is not a root hash in hex`);
  }
  const rootHash = rootHashHex.toLowerCase();
  const { signature, fingerprint } = await signDetached(
    Buffer.from(rootHash, "latin1"),
    keyPem,
    certPem,
  );
  return {
    json: serializeSignaturePartition({ rootHash, certificateFingerprint: fingerprint, signature }),
    fingerprint,
    signature,
  };
}

export interface DetachedSignature {
  /** The DER PKCS#7. */
  signature: Buffer;
  /** SHA-256 of the signer certificate's DER, lowercase hex. */
  fingerprint: string;
}

/**
 * A detached PKCS#7 over the exact bytes `content`, as signRootHash makes it (OpenSSL
 * PKCS7_DETACHED|PKCS7_NOATTR|PKCS7_BINARY, the signer certificate embedded).
 */
export async function signDetached(
  content: Buffer,
  keyPem: string | Buffer,
  certPem: string | Buffer,
): Promise<DetachedSignature> {
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new ExtctlError("usage", `the private key cannot be read (${(e as Error).message})`, {
      hint: "give an unencrypted PEM private key (RSA, EC or Ed25519)",
    });
  }
  const der = certificateDer(certPem);
  const x509 = new X509Certificate(der);
  if (!x509.checkPrivateKey(key)) {
    throw new ExtctlError(
      "usage",
      `the private key does not belong to the certificate "${x509.subject.replace(/\n/g, ", ")}"`,
    );
  }
  const [asn1js, pkijs] = await pkiModules();
  const cert = pkijs.Certificate.fromBER(new Uint8Array(der));
  let signatureOid: string;
  let digest: string | null = "sha256";
  switch (key.asymmetricKeyType) {
    case "rsa":
      signatureOid = OID.rsaEncryption;
      break;
    case "ec":
      signatureOid = "1.2.840.10045.4.3.2";
      break;
    case "ed25519":
      signatureOid = OID.ed25519;
      digest = null;
      break;
    default:
      throw new ExtctlError(
        "usage",
        `${key.asymmetricKeyType ?? "this"} keys cannot sign; use RSA, EC or Ed25519`,
      );
  }
  const signatureBytes = signBytes(digest, content, key);
  const digestAlgorithm = new pkijs.AlgorithmIdentifier({
    algorithmId: DIGEST_OIDS.sha256 as string,
    algorithmParams: new asn1js.Null(),
  });
  const signer = new pkijs.SignerInfo({
    version: 1,
    sid: new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber }),
    digestAlgorithm,
    signatureAlgorithm: new pkijs.AlgorithmIdentifier(
      signatureOid === OID.rsaEncryption
        ? { algorithmId: signatureOid, algorithmParams: new asn1js.Null() }
        : { algorithmId: signatureOid },
    ),
    signature: new asn1js.OctetString({ valueHex: new Uint8Array(signatureBytes) }),
  });
  const signedData = new pkijs.SignedData({
    version: 1,
    digestAlgorithms: [digestAlgorithm],
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: OID.data }),
    certificates: [cert],
    signerInfos: [signer],
  });
  const info = new pkijs.ContentInfo({
    contentType: OID.signedData,
    content: signedData.toSchema(true),
  });
  const signature = toBuffer(info.toSchema().toBER());
  const fingerprint = createHash("sha256").update(der).digest("hex");
  return { signature, fingerprint };
}
