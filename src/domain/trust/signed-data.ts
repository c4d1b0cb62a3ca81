// The fields of a PKCS#7/CMS SignedData that checking a detached signature needs, read with the
// strict DER reader: who each signer says it is, its algorithms, signed attributes and
// signature, and the identifying fields of a certificate (issuer, serial, subject key id).
// pkijs reads the same structures in full (3-5 ms a signature, and ~50 ms to load it); this
// takes ~0.1 ms, and refuses (DerError) anything that is not plain DER of the expected shape.
import {
  contentOf,
  contextTag,
  DerError,
  DerReader,
  encodingOf,
  readOid,
  TAG,
  type DerElement,
} from "./der.js";

export const SIGNED_DATA_OID = "1.2.840.113549.1.7.2";
const MESSAGE_DIGEST_OID = "1.2.840.113549.1.9.4";
const SUBJECT_KEY_ID_OID = "2.5.29.14";

/** How a signer names its certificate. */
export type SignerId = { issuer: Buffer; serial: Buffer } | { subjectKeyId: Buffer };

export interface SignerFields {
  sid: SignerId;
  digestAlgorithm: string;
  /** Present when the signature covers signed attributes rather than the content. */
  signedAttributes?: {
    /** Their DER as signed: the [0] IMPLICIT SET re-tagged as a SET. */
    encoded: Buffer;
    /** The messageDigest attribute's value, if there is one. */
    messageDigest?: Buffer;
  };
  signatureAlgorithm: string;
  signature: Buffer;
}

export interface SignedDataFields {
  /** Each embedded certificate's DER. */
  certificates: Buffer[];
  signers: SignerFields[];
}

/** What identifies a certificate as a signer's. */
export interface CertificateIds {
  /** The issuer Name's DER, header included. */
  issuer: Buffer;
  /** The serial number's INTEGER content bytes. */
  serial: Buffer;
  subjectKeyId?: Buffer;
}

/** Reads a DER ContentInfo holding SignedData. Throws DerError for anything else. */
export function readSignedData(der: Uint8Array): SignedDataFields {
  const top = new DerReader(der);
  const info = top.expect(TAG.sequence, "ContentInfo");
  top.finish("ContentInfo");
  const infoReader = DerReader.inside(der, info);
  const contentType = readOid(der, infoReader.expect(TAG.oid, "contentType"));
  if (contentType !== SIGNED_DATA_OID)
    throw new DerError(`the content type is ${contentType}, not SignedData`, info.contentStart);
  const explicit = infoReader.expect(contextTag(0, true), "content");
  infoReader.finish("ContentInfo");
  const outer = DerReader.inside(der, explicit);
  const signedData = outer.expect(TAG.sequence, "SignedData");
  outer.finish("the content");

  const r = DerReader.inside(der, signedData);
  checkTree(der, r.expect(TAG.integer, "version"));
  const digests = DerReader.inside(der, r.expect(TAG.set, "digestAlgorithms"));
  while (!digests.atEnd) readAlgorithm(der, digests.expect(TAG.sequence, "a digest algorithm"));
  readEncapsulatedContentInfo(der, r.expect(TAG.sequence, "encapContentInfo"));
  const certificates: Buffer[] = [];
  const certSet = r.optional(contextTag(0, true));
  if (certSet) {
    const cr = DerReader.inside(der, certSet);
    while (!cr.atEnd) {
      // Only X.509 certificates (a SEQUENCE); attribute and other certificate formats are
      // refused. Their insides are only framed here: a caller that relies on one must check it.
      const cert = encodingOf(der, cr.expect(TAG.sequence, "a certificate"));
      readCertificateIds(cert);
      certificates.push(cert);
    }
  }
  if (r.peekTag() === contextTag(1, true))
    throw new DerError("revocation lists are not read here", r.next().start);
  const signerSet = r.expect(TAG.set, "signerInfos");
  r.finish("SignedData");
  const signers: SignerFields[] = [];
  const sr = DerReader.inside(der, signerSet);
  while (!sr.atEnd) signers.push(readSignerInfo(der, sr.expect(TAG.sequence, "SignerInfo")));
  return { certificates, signers };
}

function readEncapsulatedContentInfo(der: Uint8Array, element: DerElement): void {
  const r = DerReader.inside(der, element);
  readOid(der, r.expect(TAG.oid, "eContentType"));
  // A detached signature has no eContent; one that has it is still read (the check ignores it).
  const explicit = r.optional(contextTag(0, true));
  if (explicit) {
    const e = DerReader.inside(der, explicit);
    e.expect(TAG.octetString, "eContent");
    e.finish("eContent");
  }
  r.finish("encapContentInfo");
}

function readSignerInfo(der: Uint8Array, element: DerElement): SignerFields {
  const r = DerReader.inside(der, element);
  checkTree(der, r.expect(TAG.integer, "SignerInfo version"));
  let sid: SignerId;
  const sidTag = r.peekTag();
  if (sidTag === TAG.sequence) {
    const s = DerReader.inside(der, r.next());
    const issuerElement = s.expect(TAG.sequence, "the signer's issuer");
    checkName(der, issuerElement);
    const issuer = encodingOf(der, issuerElement);
    const serialElement = s.expect(TAG.integer, "the signer's serial number");
    checkTree(der, serialElement);
    const serial = contentOf(der, serialElement);
    s.finish("IssuerAndSerialNumber");
    sid = { issuer, serial };
  } else if (sidTag === contextTag(0, false)) {
    sid = { subjectKeyId: contentOf(der, r.next()) };
  } else {
    throw new DerError(
      "the signer identifier is neither issuer/serial nor a key id",
      element.contentStart,
    );
  }
  const digestAlgorithm = readAlgorithm(der, r.expect(TAG.sequence, "digestAlgorithm"));
  const attrs = r.optional(contextTag(0, true));
  const signatureAlgorithm = readAlgorithm(der, r.expect(TAG.sequence, "signatureAlgorithm"));
  const signature = contentOf(der, r.expect(TAG.octetString, "signature"));
  // unsignedAttrs: not covered by the signature and not used, but read as strictly.
  const unsigned = r.optional(contextTag(1, true));
  if (unsigned) readAttributes(der, unsigned);
  r.finish("SignerInfo");
  return {
    sid,
    digestAlgorithm,
    ...(attrs ? { signedAttributes: readSignedAttributes(der, attrs) } : {}),
    signatureAlgorithm,
    signature,
  };
}

function readSignedAttributes(
  der: Uint8Array,
  element: DerElement,
): NonNullable<SignerFields["signedAttributes"]> {
  const messageDigest = readAttributes(der, element);
  // What is signed is the attributes' DER with the SET tag in place of [0] (RFC 5652 5.4).
  const encoded = Buffer.from(encodingOf(der, element));
  encoded[0] = TAG.set;
  return { encoded, ...(messageDigest ? { messageDigest } : {}) };
}

/** Reads a SET OF Attribute (every value checked); returns the first messageDigest's value. */
function readAttributes(der: Uint8Array, element: DerElement): Buffer | undefined {
  const r = DerReader.inside(der, element);
  if (r.atEnd) throw new DerError("the attributes are empty", element.start);
  let messageDigest: Buffer | undefined;
  while (!r.atEnd) {
    const a = DerReader.inside(der, r.expect(TAG.sequence, "an attribute"));
    const type = readOid(der, a.expect(TAG.oid, "the attribute type"));
    const values = a.expect(TAG.set, "the attribute values");
    a.finish("an attribute");
    const v = DerReader.inside(der, values);
    if (v.atEnd) throw new DerError("an attribute without a value", values.start);
    // The first messageDigest attribute counts, and its first value; it must be an OCTET STRING.
    if (type === MESSAGE_DIGEST_OID && messageDigest === undefined)
      messageDigest = Buffer.from(contentOf(der, v.expect(TAG.octetString, "the message digest")));
    checkTree(der, values);
  }
  return messageDigest;
}

/** A Name: SEQUENCE OF SET OF SEQUENCE { OID, value }, every value checked. */
function checkName(der: Uint8Array, element: DerElement): void {
  const rdns = DerReader.inside(der, element);
  while (!rdns.atEnd) {
    const rdn = rdns.expect(TAG.set, "a relative distinguished name");
    const atvs = DerReader.inside(der, rdn);
    if (atvs.atEnd) throw new DerError("an empty relative distinguished name", rdn.start);
    while (!atvs.atEnd) {
      const atv = DerReader.inside(der, atvs.expect(TAG.sequence, "a name attribute"));
      readOid(der, atv.expect(TAG.oid, "a name attribute type"));
      checkTree(der, atv.next());
      atv.finish("a name attribute");
    }
  }
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Checks an element the check does not use, and everything inside it, as strictly as what it
 * reads: a constructed one element by element, a primitive of a universal type by that type's
 * rules (an unknown universal type is refused). Nothing in a signature's envelope is skipped
 * unread, so that a damaged envelope around a good signature is not accepted here where pkijs
 * would refuse to parse it (test/e2e/trust-der-differential.test.ts cuts and flips real ones).
 */
function checkTree(der: Uint8Array, element: DerElement, depth = 0): void {
  if (depth > 16) throw new DerError("elements nested too deep", element.start);
  const { tag } = element;
  const length = element.end - element.contentStart;
  if (tag & 0x20) {
    const r = DerReader.inside(der, element);
    while (!r.atEnd) checkTree(der, r.next(), depth + 1);
    return;
  }
  if (tag & 0xc0) return; // a context-specific or private primitive: its bytes are its value
  const content = contentOf(der, element);
  const bad = (why: string) => new DerError(why, element.start);
  switch (tag) {
    case TAG.boolean:
      if (length !== 1 || (content[0] !== 0 && content[0] !== 0xff)) throw bad("a bad BOOLEAN");
      return;
    case TAG.integer:
      if (length === 0) throw bad("an empty INTEGER");
      if (
        length > 1 &&
        ((content[0] === 0 && !(content[1]! & 0x80)) || (content[0] === 0xff && content[1]! & 0x80))
      )
        throw bad("an INTEGER not in its shortest form");
      return;
    case TAG.bitString:
      if (length === 0 || content[0]! > 7 || (length === 1 && content[0] !== 0))
        throw bad("a bad BIT STRING");
      return;
    case TAG.octetString:
      return;
    case TAG.null:
      if (length !== 0) throw bad("a NULL with content");
      return;
    case TAG.oid:
      readOid(der, element);
      return;
    case 0x0c: // UTF8String
      try {
        UTF8.decode(content);
      } catch {
        throw bad("a UTF8String that is not UTF-8");
      }
      return;
    case 0x13: // PrintableString
      if (!PRINTABLE.test(content.toString("latin1"))) throw bad("a bad PrintableString");
      return;
    case 0x16: // IA5String
      if (content.some((b) => b > 0x7f)) throw bad("a bad IA5String");
      return;
    case 0x17: // UTCTime
      if (!/^\d{12}Z$/.test(content.toString("latin1"))) throw bad("a bad UTCTime");
      return;
    case 0x18: // GeneralizedTime
      if (!/^\d{14}Z$/.test(content.toString("latin1"))) throw bad("a bad GeneralizedTime");
      return;
    default:
      throw bad(`universal type ${tag} is not read here`);
  }
}

function readAlgorithm(der: Uint8Array, element: DerElement): string {
  const r = DerReader.inside(der, element);
  const oid = readOid(der, r.expect(TAG.oid, "an algorithm"));
  if (!r.atEnd) checkTree(der, r.next()); // parameters
  r.finish("an AlgorithmIdentifier");
  return oid;
}

function nonEmptyInteger(der: Uint8Array, element: DerElement): Buffer {
  if (element.end === element.contentStart) throw new DerError("an empty INTEGER", element.start);
  return contentOf(der, element);
}

/** Reads an X.509 certificate's issuer, serial and subject key identifier. Throws DerError. */
export function readCertificateIds(der: Uint8Array): CertificateIds {
  const top = new DerReader(der);
  const cert = top.expect(TAG.sequence, "Certificate");
  top.finish("the certificate");
  const c = DerReader.inside(der, cert);
  const tbs = c.expect(TAG.sequence, "tbsCertificate");
  c.expect(TAG.sequence, "the certificate's signatureAlgorithm");
  c.expect(TAG.bitString, "the certificate's signature");
  c.finish("Certificate");
  const t = DerReader.inside(der, tbs);
  t.optional(contextTag(0, true)); // version
  const serial = nonEmptyInteger(der, t.expect(TAG.integer, "serialNumber"));
  t.expect(TAG.sequence, "the TBS signature algorithm");
  const issuer = encodingOf(der, t.expect(TAG.sequence, "issuer"));
  t.expect(TAG.sequence, "validity");
  t.expect(TAG.sequence, "subject");
  t.expect(TAG.sequence, "subjectPublicKeyInfo");
  t.optional(contextTag(1, false)); // issuerUniqueID
  t.optional(contextTag(2, false)); // subjectUniqueID
  const extensions = t.optional(contextTag(3, true));
  t.finish("tbsCertificate");
  let subjectKeyId: Buffer | undefined;
  if (extensions) {
    const outer = DerReader.inside(der, extensions);
    const list = DerReader.inside(der, outer.expect(TAG.sequence, "extensions"));
    outer.finish("the extensions");
    while (!list.atEnd) {
      const ext = list.expect(TAG.sequence, "an extension");
      const e = DerReader.inside(der, ext);
      const id = readOid(der, e.expect(TAG.oid, "extnID"));
      e.optional(TAG.boolean); // critical
      const value = e.expect(TAG.octetString, "extnValue");
      e.finish("an extension");
      if (id !== SUBJECT_KEY_ID_OID) continue;
      if (subjectKeyId) throw new DerError("two subject key identifiers", ext.start);
      const v = DerReader.inside(der, value);
      subjectKeyId = contentOf(der, v.expect(TAG.octetString, "the subject key identifier"));
      v.finish("the subject key identifier");
    }
  }
  return { issuer, serial, ...(subjectKeyId ? { subjectKeyId } : {}) };
}
