// `extctl verify` on images other tools made: a signed squashfs DDI from systemd-repart 252
// (512-byte verity blocks), a bare squashfs with veritysetup/openssl sidecars, and EFI key
// databases from efitools; tampering is found and named.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, open, readFile, readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { crc32 } from "node:zlib";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { makeSigningCert } from "../helpers/keys.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { systemdVersion } from "../helpers/lane.js";
import type { EfiImportResult, TrustListResult, VerifyResult } from "../../src/index.js";

function makeCert(dir: string, name: string) {
  const { key, cert: crt } = makeSigningCert(dir, name);
  const fingerprint = run("openssl", ["x509", "-in", crt, "-noout", "-fingerprint", "-sha256"])
    .split("=")[1]!
    .trim()
    .replace(/:/g, "")
    .toLowerCase();
  return { key, crt, fingerprint };
}

async function makeTree(dir: string): Promise<string> {
  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await mkdir(path.join(tree, "usr/bin"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.demo"),
    "ID=_any\n",
  );
  // Incompressible content: a few dozen 4 KiB data blocks even after squashfs compression.
  await writeFile(path.join(tree, "usr/bin/hello"), randomBytes(200_000));
  return tree;
}

interface Partition {
  start: number;
  size: number;
  type: string;
  name?: string;
}

function partitions(image: string): Partition[] {
  const table = JSON.parse(run("sfdisk", ["--json", image])) as {
    partitiontable: { partitions: Partition[] };
  };
  return table.partitiontable.partitions;
}

async function patch(file: string, offset: number, mutate: (b: number) => number) {
  const handle = await open(file, "r+");
  const buf = Buffer.alloc(1);
  await handle.read(buf, 0, 1, offset);
  buf.writeUInt8(mutate(buf.readUInt8(0)));
  await handle.write(buf, 0, 1, offset);
  await handle.close();
}

async function repartDdi(dir: string, signer: { key: string; crt: string }): Promise<string> {
  const defs = path.join(dir, "repart.d");
  await mkdir(defs);
  await writeFile(
    path.join(defs, "10-root.conf"),
    "[Partition]\nType=root\nFormat=squashfs\nCopyFiles=/usr\nVerity=data\nVerityMatchKey=root\n",
  );
  await writeFile(
    path.join(defs, "20-root-verity.conf"),
    "[Partition]\nType=root-verity\nVerity=hash\nVerityMatchKey=root\n",
  );
  await writeFile(
    path.join(defs, "30-root-verity-sig.conf"),
    "[Partition]\nType=root-verity-sig\nVerity=signature\nVerityMatchKey=root\n",
  );
  const image = path.join(dir, "demo.raw");
  run("systemd-repart", [
    "--empty=create",
    "--size=auto",
    "--dry-run=no",
    `--definitions=${defs}`,
    `--private-key=${signer.key}`,
    `--certificate=${signer.crt}`,
    `--root=${await makeTree(dir)}`,
    image,
  ]);
  return image;
}

test("a signed DDI made by systemd-repart verifies with its certificate, not with another, and tampering is found", async (t) => {
  if (!requirePeers(t, ["systemd-repart", "openssl", "sfdisk", "mksquashfs"], { root: true }))
    return;
  const dir = await tempDir(t);
  const good = makeCert(dir, "good-signer");
  const other = makeCert(dir, "other-signer");
  const image = await repartDdi(dir, good);
  const root = await tempRoot(t);

  const ok = await runExtctl(["--root", root, "verify", image, "--trust", good.crt, "--json"]);
  assert.equal(ok.code, 0, ok.stderr + ok.stdout);
  const okJson = jsonOf<VerifyResult>(ok);
  assert.equal(okJson.outcome, "ok");
  assert.equal(okJson.kind, "ddi");
  assert.equal(okJson.signature?.signer?.fingerprint, good.fingerprint);
  // systemd-repart 252 writes 512-byte verity blocks; 257 and 262 write 4096-byte ones.
  assert.equal(okJson.verity?.superblock.dataBlockSize, systemdVersion() < 257 ? 512 : 4096);
  assert.equal(okJson.verity?.fullyChecked, false);

  // The node's own trust store counts too.
  await mkdir(path.join(root, "etc/verity.d"), { recursive: true });
  await copyFile(good.crt, path.join(root, "etc/verity.d/good.crt"));
  const viaStore = await runExtctl(["--root", root, "verify", image, "--full"]);
  assert.equal(viaStore.code, 0, viaStore.stderr);
  assert.match(viaStore.stdout, /CN ?= ?good-signer|CN=good-signer/);

  const wrongKey = await runExtctl(["verify", image, "--trust", other.crt, "--json"]);
  assert.equal(wrongKey.code, 12, wrongKey.stderr);
  const wrongJson = jsonOf<VerifyResult>(wrongKey);
  assert.equal(wrongJson.outcome, "untrusted-signer");
  assert.match(wrongJson.message, /demo\.raw/);
  assert.match(wrongJson.message, /good-signer/);
  assert.equal(wrongJson.signature?.embeddedSigner?.fingerprint, good.fingerprint);

  const parts = partitions(image);
  const data = parts.find((p) => p.name?.startsWith("root-") && !p.name.includes("verity"))!;
  const sig = parts.find((p) => p.name?.endsWith("verity-sig"))!;
  assert.ok(data && sig, JSON.stringify(parts));

  // One flipped byte in data block 37 of the data partition.
  const corrupt = path.join(dir, "corrupt.raw");
  await copyFile(image, corrupt);
  const blockSize = okJson.verity?.superblock.dataBlockSize as number;
  await patch(corrupt, data.start * 512 + 37 * blockSize + 100, (b) => b ^ 0xff);
  const light = await runExtctl(["verify", corrupt, "--trust", good.crt]);
  assert.equal(light.code, 0, "without --full the data is not read");
  const full = await runExtctl(["verify", corrupt, "--trust", good.crt, "--full", "--json"]);
  assert.equal(full.code, 15, full.stderr + full.stdout);
  const fullJson = jsonOf<VerifyResult>(full);
  assert.equal(fullJson.outcome, "corrupted-block");
  assert.equal(fullJson.corruptedBlock, 37);
  assert.match(fullJson.message, /data block 37\b/);

  // One changed character inside the base64 RSA signature value (its last 256 bytes).
  const badSig = path.join(dir, "badsig.raw");
  await copyFile(image, badSig);
  const sigBytes = (await readFile(image)).subarray(sig.start * 512, sig.start * 512 + 16384);
  const json = sigBytes.subarray(0, sigBytes.indexOf(0)).toString();
  const at = json.lastIndexOf('"signature":"') + '"signature":"'.length;
  const end = json.indexOf('"', at);
  const pos = end - 40;
  await patch(badSig, sig.start * 512 + pos, (b) => (b === 0x41 ? 0x42 : 0x41));
  const bad = await runExtctl(["verify", badSig, "--trust", good.crt, "--json"]);
  assert.equal(bad.code, 13, bad.stderr + bad.stdout);
  assert.equal(jsonOf<VerifyResult>(bad).outcome, "bad-signature");
  assert.match(jsonOf<VerifyResult>(bad).message, /good-signer/);

  // A JSON rootHash that disagrees with the tree.
  const lying = path.join(dir, "lying.raw");
  await copyFile(image, lying);
  const rh = json.indexOf('"rootHash":"') + '"rootHash":"'.length;
  await patch(lying, sig.start * 512 + rh, (b) => (b === 0x30 ? 0x31 : 0x30));
  const mismatch = await runExtctl(["verify", lying, "--trust", good.crt, "--json"]);
  assert.equal(mismatch.code, 14, mismatch.stderr + mismatch.stdout);
  assert.equal(jsonOf<VerifyResult>(mismatch).outcome, "roothash-mismatch");
});

test("issue 12 bug 2: a signed repart DDI whose primary GPT has LastUsableLBA past the end is refused under signed (systemd reads the backup)", async (t) => {
  if (!requirePeers(t, ["systemd-repart", "openssl", "sfdisk", "mksquashfs"], { root: true }))
    return;
  const dir = await tempDir(t);
  const good = makeCert(dir, "good-signer");
  const image = await repartDdi(dir, good);
  const before = await runExtctl(["verify", image, "--trust", good.crt, "--policy", "signed"]);
  assert.equal(before.code, 0, before.stderr + before.stdout);
  const buf = await readFile(image);
  buf.writeBigUInt64LE(BigInt(buf.length / 512) + 100n, 512 + 48);
  buf.writeUInt32LE(0, 512 + 16);
  buf.writeUInt32LE(crc32(buf.subarray(512, 512 + 92)), 512 + 16);
  await writeFile(image, buf);
  const after = await runExtctl([
    "verify",
    image,
    "--trust",
    good.crt,
    "--policy",
    "signed",
    "--json",
  ]);
  assert.equal(after.code, 17, after.stderr + after.stdout);
  const json = jsonOf<VerifyResult>(after);
  assert.equal(json.outcome, "ambiguous");
  assert.match(json.findings.join(), /primary GPT is invalid .*backup/);
});

test("a bare squashfs with veritysetup and openssl sidecars: its tree and signature are checked, but it is ambiguous (exit 17) and refused by verity/signed policies since systemd never sees the sidecars; no-verity and corruption keep their codes", async (t) => {
  if (!requirePeers(t, ["veritysetup", "openssl", "mksquashfs"], { root: true })) return;
  const dir = await tempDir(t);
  const signer = makeCert(dir, "bare-signer");
  const image = path.join(dir, "bare.raw");
  run("mksquashfs", [await makeTree(dir), image, "-noappend", "-all-root", "-quiet"]);

  const noVerity = await runExtctl(["verify", image, "--json"]);
  assert.equal(noVerity.code, 10, noVerity.stderr);
  assert.equal(jsonOf<VerifyResult>(noVerity).outcome, "no-verity");
  const anyPolicy = await runExtctl(["verify", image, "--policy", "any"]);
  assert.equal(anyPolicy.code, 0, "policy any accepts an image without verity");

  const out = run("veritysetup", ["format", image, path.join(dir, "bare.verity")]);
  const rootHash = /Root hash:\s*([0-9a-f]+)/.exec(out)![1]!;
  await writeFile(path.join(dir, "bare.roothash"), rootHash + "\n");
  // systemd-sysext is shown the image through a /run/extensions symlink and never sees these
  // sidecars (issue 12, security bug 4): the hash tree is checked but the image is "ambiguous".
  const unsigned = await runExtctl(["verify", image, "--json"]);
  assert.equal(unsigned.code, 17, unsigned.stderr);
  assert.equal(jsonOf<VerifyResult>(unsigned).outcome, "ambiguous");
  assert.match(jsonOf<VerifyResult>(unsigned).findings.join(), /\/run\/extensions/);
  const verityPolicy = await runExtctl(["verify", image, "--policy", "verity"]);
  assert.equal(verityPolicy.code, 17);
  const signedPolicy = await runExtctl(["verify", image, "--policy", "signed"]);
  assert.equal(signedPolicy.code, 17);

  execFileSync("sh", [
    "-c",
    `printf %s "${rootHash}" | openssl smime -sign -nocerts -noattr -binary -in /dev/stdin -signer "${signer.crt}" -inkey "${signer.key}" -outform der -out "${path.join(dir, "bare.roothash.p7s")}"`,
  ]);
  const ok = await runExtctl(["verify", image, "--trust", signer.crt, "--full", "--json"]);
  assert.equal(ok.code, 17, ok.stderr + ok.stdout);
  const okJson = jsonOf<VerifyResult>(ok);
  assert.equal(okJson.protection, "unprotected", "systemd would mount it without verity");
  const signedOk = await runExtctl(["verify", image, "--trust", signer.crt, "--policy", "signed"]);
  assert.notEqual(signedOk.code, 0, "a signed policy does not admit sidecars systemd never sees");
  assert.equal(okJson.signature?.signer?.fingerprint, signer.fingerprint);
  assert.equal(okJson.verity?.fullyChecked, true);

  await patch(image, 4096 * 3 + 5, (b) => b ^ 1);
  const corrupt = await runExtctl(["verify", image, "--trust", signer.crt, "--full", "--json"]);
  assert.equal(corrupt.code, 15, corrupt.stdout);
  assert.equal(jsonOf<VerifyResult>(corrupt).corruptedBlock, 3);
});

test("trust import-efi writes the X.509 entries of db (and of KEK, PK when asked; lists made by cert-to-efi-sig-list) as PEM files, and trust list shows them", async (t) => {
  if (!requirePeers(t, ["cert-to-efi-sig-list", "openssl"], { root: true })) return;
  const dir = await tempDir(t);
  const root = await tempRoot(t);
  const efivars = path.join(dir, "efivars");
  await mkdir(efivars);
  const certs = {
    pk: makeCert(dir, "pk"),
    kek: makeCert(dir, "kek"),
    db1: makeCert(dir, "db-one"),
    db2: makeCert(dir, "db-two"),
  };
  const esl = (c: { crt: string }, name: string) => {
    const out = path.join(dir, `${name}.esl`);
    run("cert-to-efi-sig-list", ["-g", "11111111-2222-3333-4444-555555555555", c.crt, out]);
    return readFile(out);
  };
  const attr = Buffer.from([0x27, 0, 0, 0]);
  await writeFile(
    path.join(efivars, "PK-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
    Buffer.concat([attr, await esl(certs.pk, "pk")]),
  );
  await writeFile(
    path.join(efivars, "KEK-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
    Buffer.concat([attr, await esl(certs.kek, "kek")]),
  );
  await writeFile(
    path.join(efivars, "db-d719b2cb-3d3a-4596-a3bc-dad00e67656f"),
    Buffer.concat([attr, await esl(certs.db1, "db1"), await esl(certs.db2, "db2")]),
  );

  // By default db only: what the firmware boots with (the kernel's .platform keyring).
  const dbOnlyRoot = await tempRoot(t);
  const dbOnly = await runExtctl([
    "--root",
    dbOnlyRoot,
    "trust",
    "import-efi",
    "--efivars",
    efivars,
  ]);
  assert.equal(dbOnly.code, 0, dbOnly.stderr);
  assert.deepEqual((await readdir(path.join(dbOnlyRoot, "run/verity.d"))).sort(), [
    "DB0.crt",
    "DB1.crt",
  ]);

  const imported = await runExtctl([
    "--root",
    root,
    "trust",
    "import-efi",
    "--efivars",
    efivars,
    "--include-kek",
    "--include-pk",
    "--json",
  ]);
  assert.equal(imported.code, 0, imported.stderr);
  const names = (await readdir(path.join(root, "run/verity.d"))).sort();
  assert.deepEqual(names, ["DB0.crt", "DB1.crt", "KEK0.crt", "PK0.crt"]);
  const fp = (file: string) =>
    run("openssl", ["x509", "-in", file, "-noout", "-fingerprint", "-sha256"])
      .split("=")[1]!
      .trim()
      .replace(/:/g, "")
      .toLowerCase();
  assert.equal(fp(path.join(root, "run/verity.d/PK0.crt")), certs.pk.fingerprint);
  assert.equal(fp(path.join(root, "run/verity.d/KEK0.crt")), certs.kek.fingerprint);
  assert.equal(fp(path.join(root, "run/verity.d/DB0.crt")), certs.db1.fingerprint);
  assert.equal(fp(path.join(root, "run/verity.d/DB1.crt")), certs.db2.fingerprint);
  assert.equal(
    jsonOf<EfiImportResult>(imported).imported.find((k) => k.variable === "db")?.owner,
    "11111111-2222-3333-4444-555555555555",
  );

  const list = await runExtctl(["--root", root, "trust", "list", "--json"]);
  assert.equal(list.code, 0, list.stderr);
  const listed = jsonOf<TrustListResult>(list);
  assert.deepEqual(
    listed.certificates.map((c: { fingerprint: string }) => c.fingerprint).sort(),
    Object.values(certs)
      .map((c) => c.fingerprint)
      .sort(),
  );
  assert.equal(listed.policy.name, "any");
  // A trusted boot sentinel makes `signed` the default.
  await mkdir(path.join(root, "run/cos"), { recursive: true });
  await writeFile(path.join(root, "run/cos/uki_boot_mode"), "");
  const trusted = jsonOf<TrustListResult>(
    await runExtctl(["--root", root, "trust", "list", "--json"]),
  );
  assert.equal(trusted.policy.name, "signed");
  assert.match(trusted.policy.source, /uki_boot_mode/);
});

/** A sysext built and signed by extctl with `signer`'s key. */
async function signedImage(dir: string, name: string, signer: { key: string; crt: string }) {
  const tree = path.join(dir, `tree-${name}`);
  await mkdir(path.join(tree, "usr/share", name), { recursive: true });
  await writeFile(path.join(tree, "usr/share", name, "hello"), `hello from ${name}\n`);
  const out = path.join(dir, `out-${name}`);
  await mkdir(out);
  const r = await runExtctl([
    "build",
    "sysext",
    name,
    tree,
    "-o",
    out,
    "--private-key",
    signer.key,
    "--certificate",
    signer.crt,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return path.join(out, `${name}.sysext.raw`);
}

test("import-efi trusts db only by default: an image signed by the KEK or PK key is refused, and trusted with --include-kek / --include-pk", async (t) => {
  if (
    !requirePeers(t, ["cert-to-efi-sig-list", "sign-efi-sig-list", "openssl", "mksquashfs"], {
      root: true,
    })
  )
    return;
  const dir = await tempDir(t);
  const pk = makeCert(dir, "platform-key");
  const kek = makeCert(dir, "key-exchange-key");
  const db = makeCert(dir, "signature-db");
  const owner = "22222222-3333-4444-5555-666666666666";
  // The lists as an enrolment makes them: each ESL by cert-to-efi-sig-list, and the update that
  // sets it signed by the key above it (KEK by PK, db by KEK) with sign-efi-sig-list, which
  // checks that the key and certificate go together. efivarfs shows the attributes and the ESL.
  const esl = async (c: { crt: string }, name: string, signer?: { key: string; crt: string }) => {
    const out = path.join(dir, `${name}.esl`);
    run("cert-to-efi-sig-list", ["-g", owner, c.crt, out]);
    if (signer) {
      const auth = path.join(dir, `${name}.auth`);
      run("sign-efi-sig-list", ["-g", owner, "-k", signer.key, "-c", signer.crt, name, out, auth]);
      assert.ok((await readFile(auth)).length > (await readFile(out)).length);
    }
    return Buffer.concat([Buffer.from([0x27, 0, 0, 0]), await readFile(out)]);
  };
  const efivars = async (root: string) => {
    const d = path.join(root, "sys/firmware/efi/efivars");
    await mkdir(d, { recursive: true });
    await writeFile(
      path.join(d, "PK-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
      await esl(pk, "PK", pk),
    );
    await writeFile(
      path.join(d, "KEK-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
      await esl(kek, "KEK", pk),
    );
    await writeFile(
      path.join(d, "db-d719b2cb-3d3a-4596-a3bc-dad00e67656f"),
      await esl(db, "db", kek),
    );
  };
  const images = {
    db: await signedImage(dir, "by-db", db),
    kek: await signedImage(dir, "by-kek", kek),
    pk: await signedImage(dir, "by-pk", pk),
  };
  const outcomes = async (root: string) => {
    const out: Record<string, string> = {};
    for (const [which, image] of Object.entries(images)) {
      const r = await runExtctl(["--root", root, "verify", image, "--json"]);
      out[which] = jsonOf<VerifyResult>(r).outcome;
    }
    return out;
  };

  // The root's own efivars (no --efivars): the default reads db alone.
  const plain = await tempRoot(t);
  await efivars(plain);
  const def = await runExtctl(["--root", plain, "trust", "import-efi", "--json"]);
  assert.equal(def.code, 0, def.stderr);
  assert.deepEqual(
    jsonOf<EfiImportResult>(def).imported.map((k) => k.variable),
    ["db"],
  );
  assert.deepEqual(await outcomes(plain), {
    db: "ok",
    kek: "untrusted-signer",
    pk: "untrusted-signer",
  });

  const withKek = await tempRoot(t);
  await efivars(withKek);
  const k = await runExtctl(["--root", withKek, "trust", "import-efi", "--include-kek"]);
  assert.equal(k.code, 0, k.stderr);
  assert.deepEqual(await outcomes(withKek), { db: "ok", kek: "ok", pk: "untrusted-signer" });

  const withPk = await tempRoot(t);
  await efivars(withPk);
  const p = await runExtctl(["--root", withPk, "trust", "import-efi", "--include-pk"]);
  assert.equal(p.code, 0, p.stderr);
  assert.deepEqual(await outcomes(withPk), { db: "ok", kek: "untrusted-signer", pk: "ok" });
});
