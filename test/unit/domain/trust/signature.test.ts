// Root-hash signatures as systemd-repart writes them: the verity-sig partition's JSON round-trips
// and refuses what systemd would, and a signature made here verifies only against its own
// certificate and only over its own root hash. Keys are throwaway ones from the real openssl.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import test from "node:test";
import { ExtctlError } from "../../../../src/util/errors.js";
import {
  SIGNATURE_PARTITION_SIZE,
  certificateDer,
  describeCertificate,
  parseSignaturePartition,
  serializeSignaturePartition,
  signRootHash,
  signatureCertificates,
  verifyRootHashSignature,
  type TrustedCertificate,
} from "../../../../src/domain/trust/signature.js";
import { makeSigningCert } from "../../../helpers/keys.js";

const ROOT = "ab".repeat(32);

function refusal(bytes: Buffer): string {
  try {
    parseSignaturePartition(bytes, "img.raw");
  } catch (e) {
    assert.ok(e instanceof ExtctlError && e.code === "signature");
    return e.message;
  }
  assert.fail("the partition was accepted");
}

/** Flips the low bit of one byte. */
function flip(b: Buffer, at: number): void {
  b.writeUInt8(b.readUInt8(at) ^ 1, at);
}

const json = (v: unknown) => Buffer.concat([Buffer.from(JSON.stringify(v)), Buffer.alloc(8)]);

test("the partition's JSON round-trips, NUL-padded to 16 KiB as repart writes it", () => {
  const sig = {
    rootHash: ROOT,
    certificateFingerprint: "cd".repeat(32),
    signature: Buffer.from([0x30, 0x03, 1, 2, 3]),
  };
  const bytes = serializeSignaturePartition(sig);
  assert.equal(bytes.length, SIGNATURE_PARTITION_SIZE);
  assert.deepEqual(parseSignaturePartition(bytes, "img.raw"), sig);
  const big = serializeSignaturePartition({ ...sig, signature: Buffer.alloc(20000) });
  assert.equal(big.length, 2 * SIGNATURE_PARTITION_SIZE);
  // Hex in capitals reads as lowercase; the fingerprint is optional.
  assert.deepEqual(
    parseSignaturePartition(json({ rootHash: ROOT.toUpperCase(), signature: "AQID" }), "x"),
    { rootHash: ROOT, signature: Buffer.from([1, 2, 3]) },
  );
});

test("what systemd would refuse is refused, naming the image and the field", () => {
  assert.match(
    refusal(Buffer.from('{"rootHash":"ab"}\0\0x\0')),
    /^img\.raw: .*byte 19 after the JSON is not NUL/,
  );
  assert.match(refusal(Buffer.from("{nope\0")), /it is not JSON/);
  assert.match(refusal(json([1])), /its JSON is not an object/);
  assert.match(refusal(json({ signature: "AQID" })), /rootHash is missing or not hex/);
  assert.match(
    refusal(json({ rootHash: "abc", signature: "AQID" })),
    /rootHash is missing or not hex/,
  );
  assert.match(
    refusal(json({ rootHash: ROOT, certificateFingerprint: "zz", signature: "AQID" })),
    /certificateFingerprint is not a SHA-256/,
  );
  assert.match(
    refusal(json({ rootHash: ROOT, signature: "!!" })),
    /signature is missing or not base64/,
  );
  assert.match(
    refusal(json({ rootHash: ROOT, signature: "" })),
    /signature is missing or not base64|signature is empty/,
  );
});

test("a signature verifies against its certificate, over its root hash, and nothing else", async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "extctl-sig-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const good = makeSigningCert(dir, "good");
  const other = makeSigningCert(dir, "other", { type: "ec" });
  const trusted = async (c: { cert: string }, source: string): Promise<TrustedCertificate> => {
    const der = certificateDer(await readFile(c.cert));
    return { ...describeCertificate(der), der, source };
  };
  const goodCert = await trusted(good, "good.crt");
  const otherCert = await trusted(other, "other.crt");

  const signed = await signRootHash(
    ROOT.toUpperCase(),
    await readFile(good.key),
    await readFile(good.cert),
  );
  assert.equal(signed.fingerprint, goodCert.fingerprint);
  const partition = parseSignaturePartition(signed.json, "img.raw");
  assert.equal(partition.rootHash, ROOT);
  assert.deepEqual(partition.signature, signed.signature);
  assert.deepEqual(
    (await signatureCertificates(signed.signature, "img.raw")).map((c) => c.fingerprint),
    [goodCert.fingerprint],
  );

  const ok = await verifyRootHashSignature(
    ROOT,
    signed.signature,
    [otherCert, goodCert],
    "img.raw",
  );
  assert.ok(ok.ok && ok.signer.source === "good.crt");

  // The embedded certificate is not trust by itself: only the trusted list counts.
  const untrusted = await verifyRootHashSignature(ROOT, signed.signature, [otherCert], "img.raw");
  assert.ok(!untrusted.ok && untrusted.reason === "untrusted-signer");
  assert.equal(untrusted.embeddedSigner?.fingerprint, goodCert.fingerprint);

  const otherHash = await verifyRootHashSignature(
    "cd".repeat(32),
    signed.signature,
    [goodCert],
    "img.raw",
  );
  assert.ok(!otherHash.ok && otherHash.reason === "bad-signature");

  const flipped = Buffer.from(signed.signature);
  flip(flipped, flipped.length - 10); // inside the signature value, at the end of SignerInfo
  const bad = await verifyRootHashSignature(ROOT, flipped, [goodCert], "img.raw");
  assert.equal(bad.ok, false);

  await assert.rejects(
    signRootHash("not-hex", await readFile(good.key), await readFile(good.cert)),
    /is not a root hash in hex/,
  );
  assert.throws(() => certificateDer("not a certificate"), /not a PEM or DER X\.509 certificate/);
});
