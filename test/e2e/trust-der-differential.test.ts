// The strict DER reader of signatures against pkijs and OpenSSL 3: on signatures made by
// `openssl smime -sign`, `openssl cms -sign` (issuer/serial and key-id signers, with and without
// signed attributes, RSA and EC) and extctl's own signer it reads the same fields as pkijs, the
// fast path accepts exactly where pkijs and `openssl cms -verify` do, and a truncated, flipped
// or padded signature is decided as pkijs alone decides it (never accepted where pkijs refuses).
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import type * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import {
  acceptedByStrictDer,
  checkWithPkijs,
  describeCertificate,
  signRootHash,
  verifyRootHashSignature,
  type SignatureCheck,
  type TrustedCertificate,
} from "../../src/domain/trust/signature.js";
import { DerError } from "../../src/domain/trust/der.js";
import { readSignedData, type SignerFields } from "../../src/domain/trust/signed-data.js";
import { makeSigningCert } from "../helpers/keys.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir } from "../helpers/tmp.js";

const ROOT_HASH = "3c1f0d5e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";
const CONTENT = Buffer.from(ROOT_HASH, "latin1");
const WRONG = Buffer.from(ROOT_HASH.replace(/^3/, "4"), "latin1");

async function trusted(crt: string): Promise<TrustedCertificate> {
  const der = Buffer.from(
    (await readFile(crt, "utf8")).replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""),
    "base64",
  );
  return { ...describeCertificate(der), der, source: crt };
}

const view = (v: ArrayBuffer | Uint8Array) =>
  v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : Buffer.from(v);

/** The fields readSignedData reads, as pkijs reads them. */
function pkijsFields(der: Buffer): { certificates: Buffer[]; signers: SignerFields[] } {
  const info = pkijs.ContentInfo.fromBER(new Uint8Array(der));
  const sd = new pkijs.SignedData({ schema: info.content });
  return {
    certificates: (sd.certificates ?? []).map((c) =>
      view((c as pkijs.Certificate).toSchema().toBER()),
    ),
    signers: sd.signerInfos.map((s) => {
      const sid =
        s.sid instanceof pkijs.IssuerAndSerialNumber
          ? {
              issuer: view(s.sid.issuer.valueBeforeDecode),
              serial: view(s.sid.serialNumber.valueBlock.valueHexView),
            }
          : { subjectKeyId: view((s.sid as asn1js.Primitive).valueBlock.valueHexView) };
      const attrs = s.signedAttrs;
      const md = attrs?.attributes.find((a) => a.type === "1.2.840.113549.1.9.4");
      return {
        sid,
        digestAlgorithm: s.digestAlgorithm.algorithmId,
        ...(attrs
          ? {
              signedAttributes: {
                encoded: view(attrs.encodedValue),
                messageDigest: view((md!.values[0] as asn1js.OctetString).valueBlock.valueHexView),
              },
            }
          : {}),
        signatureAlgorithm: s.signatureAlgorithm.algorithmId,
        signature: view(s.signature.valueBlock.valueHexView),
      };
    }),
  };
}

/** What a check says, comparable across paths (a throw is its message). */
async function outcome(fn: () => Promise<SignatureCheck>): Promise<unknown> {
  try {
    const r = await fn();
    return r.ok ? { ok: true, signer: r.signer.fingerprint } : r;
  } catch (e) {
    return { threw: (e as Error).message };
  }
}

/** Whether `openssl cms -verify` accepts `sig` over `content` with only `trustPem` as signer. */
async function opensslAccepts(dir: string, sig: Buffer, content: Buffer, trustPem: string) {
  const sigPath = path.join(dir, "check.p7s");
  const contentPath = path.join(dir, "check.txt");
  await writeFile(sigPath, sig);
  await writeFile(contentPath, content);
  try {
    run("openssl", [
      "cms",
      "-verify",
      "-binary",
      "-noverify",
      "-nointern",
      "-certfile",
      trustPem,
      "-inform",
      "der",
      "-in",
      sigPath,
      "-content",
      contentPath,
      "-out",
      "/dev/null",
    ]);
    return true;
  } catch {
    return false;
  }
}

type Maker = (dir: string, cert: { key: string; cert: string }) => Promise<Buffer>;

function openssl(tool: "smime" | "cms", flags: string[]): Maker {
  return async (dir, cert) => {
    const input = path.join(dir, "roothash.txt");
    const out = path.join(dir, `sig-${tool}${flags.join("")}.p7s`);
    await writeFile(input, ROOT_HASH);
    run("openssl", [
      tool,
      "-sign",
      ...flags,
      "-binary",
      "-in",
      input,
      "-signer",
      cert.cert,
      "-inkey",
      cert.key,
      "-outform",
      "der",
      "-out",
      out,
    ]);
    return readFile(out);
  };
}

const MAKERS: Record<string, Maker> = {
  "openssl smime -noattr": openssl("smime", ["-noattr"]),
  "openssl smime -noattr -nocerts": openssl("smime", ["-noattr", "-nocerts"]),
  "openssl smime (signed attributes)": openssl("smime", []),
  "openssl cms -noattr -keyid": openssl("cms", ["-noattr", "-keyid"]),
  "openssl cms -md sha384 (signed attributes)": openssl("cms", ["-md", "sha384"]),
  "extctl signRootHash": async (_dir, cert) =>
    (await signRootHash(ROOT_HASH, await readFile(cert.key), await readFile(cert.cert))).signature,
};

for (const type of ["rsa", "ec"] as const) {
  for (const [label, make] of Object.entries(MAKERS)) {
    test(`${label}, ${type.toUpperCase()}: the strict reader reads what pkijs reads and accepts exactly where pkijs and openssl cms -verify do`, async (t) => {
      if (!requirePeers(t, ["openssl"], { root: true })) return;
      const dir = await tempDir(t);
      const good = makeSigningCert(dir, "signer", { type });
      const other = makeSigningCert(dir, "other", { type });
      const sig = await make(dir, good);

      assert.deepEqual(readSignedData(sig), pkijsFields(sig));

      const goodT = await trusted(good.cert);
      const otherT = await trusted(other.cert);
      for (const [trust, pem, content, expectOk] of [
        [[goodT], good.cert, CONTENT, true],
        [[otherT, goodT], good.cert, CONTENT, true],
        [[otherT], other.cert, CONTENT, false],
        [[goodT], good.cert, WRONG, false],
      ] as const) {
        const fast = acceptedByStrictDer(content, sig, trust);
        const slow = await checkWithPkijs(content, sig, trust, "test.raw");
        assert.equal(slow.ok, expectOk, slow.ok ? "" : slow.message);
        assert.equal(await opensslAccepts(dir, sig, content, pem), expectOk);
        // The fast path decides every good signature here, and only those.
        assert.deepEqual(fast, expectOk ? slow : undefined);
        assert.deepEqual(
          await outcome(() => verifyRootHashSignature(content.toString(), sig, trust, "test.raw")),
          await outcome(async () => slow),
        );
      }
    });
  }
}

test("truncated, flipped and padded signatures are decided as pkijs alone decides them", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const dir = await tempDir(t);
  for (const type of ["rsa", "ec"] as const) {
    const good = makeSigningCert(dir, `signer-${type}`, { type });
    const trust = [await trusted(good.cert)];
    for (const make of [
      MAKERS["openssl smime -noattr"]!,
      MAKERS["openssl smime (signed attributes)"]!,
    ]) {
      const sig = await make(dir, good);
      const same = async (bad: Buffer, why: string) => {
        let strict: unknown;
        try {
          strict = readSignedData(bad);
        } catch (e) {
          strict = e;
        }
        // The strict reader either reads it or refuses it with a DerError, nothing else.
        if (strict instanceof Error) assert.ok(strict instanceof DerError, `${why}: ${strict}`);
        const expected = await outcome(() => checkWithPkijs(CONTENT, bad, trust, "test.raw"));
        assert.deepEqual(
          await outcome(() => verifyRootHashSignature(ROOT_HASH, bad, trust, "test.raw")),
          expected,
          why,
        );
        if (acceptedByStrictDer(CONTENT, bad, trust))
          assert.deepEqual(expected, { ok: true, signer: trust[0]!.fingerprint }, why);
      };
      for (let n = 0; n < sig.length; n += n < 64 ? 1 : 7) {
        const cut = sig.subarray(0, n);
        assert.throws(() => readSignedData(cut), DerError, `cut to ${n} bytes`);
        await same(cut, `cut to ${n} bytes`);
      }
      for (let i = 0; i < sig.length; i += 3) {
        const flipped = Buffer.from(sig);
        flipped[i] = (flipped[i] as number) ^ (i % 2 ? 0x80 : 0x01);
        await same(flipped, `byte ${i} flipped`);
      }
      // Trailing bytes: strict DER refuses them, pkijs (and OpenSSL) read the first element.
      const padded = Buffer.concat([sig, Buffer.from([0, 0])]);
      assert.throws(() => readSignedData(padded), /unexpected bytes after the end of ContentInfo/);
      await same(padded, "two bytes appended");
    }
  }
});
