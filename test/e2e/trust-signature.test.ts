// Root hash signatures against OpenSSL 3.0: what `openssl smime -sign` makes (RSA and EC, with
// and without the signer certificate, with and without attributes) verifies with extctl, and
// what extctl signs verifies with `openssl smime -verify`.
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import {
  describeCertificate,
  parseSignaturePartition,
  signRootHash,
  verifyRootHashSignature,
  type TrustedCertificate,
} from "../../src/domain/trust/signature.js";
import { makeSigningCert } from "../helpers/keys.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir } from "../helpers/tmp.js";

const ROOT_HASH = "3c1f0d5e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";

async function makeCert(dir: string, name: string, type: "rsa" | "ec") {
  const { key, cert: crt } = makeSigningCert(dir, name, { type });
  return { key, crt };
}

async function trusted(crt: string): Promise<TrustedCertificate> {
  const der = Buffer.from(
    (await readFile(crt, "utf8")).replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""),
    "base64",
  );
  return { ...describeCertificate(der), der, source: crt };
}

async function opensslSign(
  t: TestContext,
  dir: string,
  cert: { key: string; crt: string },
  flags: string[],
) {
  const input = path.join(dir, "roothash.txt");
  await writeFile(input, ROOT_HASH);
  const out = path.join(dir, `sig-${flags.join("")}.p7s`);
  run("openssl", [
    "smime",
    "-sign",
    ...flags,
    "-binary",
    "-in",
    input,
    "-signer",
    cert.crt,
    "-inkey",
    cert.key,
    "-outform",
    "der",
    "-out",
    out,
  ]);
  void t;
  return readFile(out);
}

for (const type of ["rsa", "ec"] as const) {
  for (const flags of [["-noattr"], ["-noattr", "-nocerts"], []]) {
    test(`an openssl smime ${flags.join(" ") || "(with attributes)"} signature by a ${type.toUpperCase()} key verifies with its certificate and not with another`, async (t) => {
      if (!requirePeers(t, ["openssl"], { root: true })) return;
      const dir = await tempDir(t);
      const good = await makeCert(dir, "signer", type);
      const other = await makeCert(dir, "other", type);
      const sig = await opensslSign(t, dir, good, flags);
      const goodTrust = await trusted(good.crt);
      const ok = await verifyRootHashSignature(
        ROOT_HASH,
        sig,
        [await trusted(other.crt), goodTrust],
        "test.raw",
      );
      assert.equal(ok.ok, true, ok.ok ? "" : ok.message);
      assert.equal(ok.ok && ok.signer.fingerprint, goodTrust.fingerprint);
      assert.equal(ok.ok && ok.signer.subject, "CN=signer");

      const untrusted = await verifyRootHashSignature(
        ROOT_HASH,
        sig,
        [await trusted(other.crt)],
        "test.raw",
      );
      assert.equal(untrusted.ok, false);
      assert.equal(!untrusted.ok && untrusted.reason, "untrusted-signer");
      assert.match(!untrusted.ok ? untrusted.message : "", /test\.raw/);
      if (!flags.includes("-nocerts"))
        assert.match(!untrusted.ok ? untrusted.message : "", /CN=signer/);

      const otherHash = ROOT_HASH.replace(/^3/, "4");
      const wrong = await verifyRootHashSignature(otherHash, sig, [goodTrust], "test.raw");
      assert.equal(!wrong.ok && wrong.reason, "bad-signature");
      assert.match(!wrong.ok ? wrong.message : "", /CN=signer/);
    });
  }
}

test("a flipped byte in the signature value is refused as a bad signature", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const dir = await tempDir(t);
  const cert = await makeCert(dir, "signer", "rsa");
  const sig = Buffer.from(await opensslSign(t, dir, cert, ["-noattr"]));
  // The RSA signature value is the last 256 bytes of the DER.
  sig.writeUInt8(sig.readUInt8(sig.length - 10) ^ 0x01, sig.length - 10);
  const result = await verifyRootHashSignature(
    ROOT_HASH,
    sig,
    [await trusted(cert.crt)],
    "test.raw",
  );
  assert.equal(!result.ok && result.reason, "bad-signature");
});

for (const type of ["rsa", "ec"] as const) {
  test(`a signature extctl makes with a ${type.toUpperCase()} key verifies with openssl smime -verify and back with extctl`, async (t) => {
    if (!requirePeers(t, ["openssl"], { root: true })) return;
    const dir = await tempDir(t);
    const cert = await makeCert(dir, "builder", type);
    const signed = await signRootHash(
      ROOT_HASH.toUpperCase(),
      await readFile(cert.key),
      await readFile(cert.crt),
    );
    assert.equal(signed.json.length, 16384);
    const parsed = parseSignaturePartition(signed.json, "built.raw");
    assert.equal(parsed.rootHash, ROOT_HASH);
    assert.equal(parsed.certificateFingerprint, signed.fingerprint);
    assert.ok(parsed.signature.equals(signed.signature));
    const expectedFp = run("openssl", [
      "x509",
      "-in",
      cert.crt,
      "-noout",
      "-fingerprint",
      "-sha256",
    ])
      .split("=")[1]!
      .trim()
      .replace(/:/g, "")
      .toLowerCase();
    assert.equal(signed.fingerprint, expectedFp);

    const sigPath = path.join(dir, "sig.p7s");
    const content = path.join(dir, "content");
    await writeFile(sigPath, signed.signature);
    await writeFile(content, ROOT_HASH);
    // -noverify: no chain; the signer certificate comes from inside the PKCS#7 (embedded).
    run("openssl", [
      "smime",
      "-verify",
      "-binary",
      "-noverify",
      "-inform",
      "der",
      "-in",
      sigPath,
      "-content",
      content,
      "-out",
      "/dev/null",
    ]);
    // And it is really over the hex root hash: other content fails.
    await writeFile(content, ROOT_HASH.toUpperCase());
    assert.throws(() =>
      run("openssl", [
        "smime",
        "-verify",
        "-binary",
        "-noverify",
        "-inform",
        "der",
        "-in",
        sigPath,
        "-content",
        content,
        "-out",
        "/dev/null",
      ]),
    );
    // No signed attributes, as repart writes it.
    const dump = run("openssl", ["cms", "-cmsout", "-print", "-inform", "der", "-in", sigPath]);
    assert.match(dump, /signedAttrs:\s*<ABSENT>/);

    const back = await verifyRootHashSignature(
      ROOT_HASH,
      signed.signature,
      [await trusted(cert.crt)],
      "built.raw",
    );
    assert.equal(back.ok, true);
  });
}
