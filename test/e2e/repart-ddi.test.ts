// AuroraBoot's images and immucore's check against the lane's own systemd: DDIs made by
// `systemd-repart --make-ddi=sysext|confext` (255+; Debian 12's 252 has no --make-ddi and no
// --validate, so those tests skip there with that reason, in CI too: it is a fact of 252) are read
// by extctl (`inspect` shows repart's root hash, `verify --trust` gives the right exit codes,
// `boot --policy signed` links only the trusted one), and `extctl build` images pass
// `systemd-dissect --validate --image-policy=root=signed+absent:usr=signed+absent` with the
// certificate in /etc/verity.d, as immucore checks them on a trusted boot.
// --validate checks the policy's structure (a signature partition is there), not who signed: an
// image signed by an unknown key passes it, while extctl's verify and boot refuse it.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFile, mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { runExtctl } from "../helpers/cli.js";
import { makeSigningCert, type SigningCert } from "../helpers/keys.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { SYSTEMD_FEATURES } from "../../src/domain/image/systemd-versions.js";

const SIGNED_POLICY = "root=signed+absent:usr=signed+absent";
const STORE = "var/lib/kairos/extensions";

function systemdVersion(): number {
  const r = spawnSync("systemd-repart", ["--version"], { encoding: "utf8" });
  return Number(/systemd (\d+)/.exec(r.stdout ?? "")?.[1] ?? 0);
}

/** Skips (in CI too) when this systemd lacks the feature: that is what the version is. */
function needs(t: TestContext, feature: "repartMakeDdi" | "dissectValidate"): boolean {
  const f = SYSTEMD_FEATURES[feature];
  const v = systemdVersion();
  if (v >= f.since) return true;
  t.skip(`systemd ${v} has no ${f.what} (systemd ${f.since}+)`);
  return false;
}

async function tree(work: string, kind: "sysext" | "confext", name: string): Promise<string> {
  const dir = path.join(work, `tree-${name}`);
  const top = kind === "sysext" ? "usr" : "etc";
  const releaseDir = kind === "sysext" ? "usr/lib/extension-release.d" : "etc/extension-release.d";
  await mkdir(path.join(dir, releaseDir), { recursive: true });
  await mkdir(path.join(dir, top, "share", name), { recursive: true });
  // AuroraBoot's release file: ID=_any and the architecture.
  await writeFile(
    path.join(dir, releaseDir, `extension-release.${name}`),
    "ID=_any\nARCHITECTURE=x86-64\n",
  );
  await writeFile(path.join(dir, top, "share", name, "hello"), `hello from ${name}\n`);
  return dir;
}

/** AuroraBoot's invocation: repart --make-ddi, signed when given keys, else no signature partition. */
function repart(
  kind: "sysext" | "confext",
  source: string,
  out: string,
  keys?: SigningCert,
): { rootHash: string } {
  const signing = keys
    ? ["--private-key", keys.key, "--certificate", keys.cert]
    : ["--exclude-partitions=root-verity-sig,usr-verity-sig"];
  const json = run("systemd-repart", [
    `--make-ddi=${kind}`,
    `--copy-source=${source}`,
    "--seed=c1d1e5c0-9f0b-4d35-9d4e-6a5a1e1b2c3d",
    ...signing,
    "--json=short",
    out,
  ]);
  const parts = JSON.parse(json) as { roothash?: string }[];
  const rootHash = parts.map((p) => p.roothash).find((h) => typeof h === "string" && h !== "-");
  assert.ok(rootHash, `repart printed no root hash: ${json}`);
  return { rootHash };
}

const PEERS = ["systemd-repart", "systemd-dissect", "openssl"];

for (const kind of ["sysext", "confext"] as const) {
  test(`repart --make-ddi=${kind}: inspect shows repart's root hash, verify --trust exits 0, 11, 12`, async (t) => {
    if (!requirePeers(t, PEERS, { root: true }) || !needs(t, "repartMakeDdi")) return;
    const work = await tempDir(t);
    const fleet = makeSigningCert(work, "fleet");
    const other = makeSigningCert(work, "other");
    const signedOut = path.join(work, `signed.${kind}.raw`);
    const plainOut = path.join(work, `plain.${kind}.raw`);
    const signed = repart(kind, await tree(work, kind, "signed"), signedOut, fleet);
    const plain = repart(kind, await tree(work, kind, "plain"), plainOut);

    const inspected = await runExtctl(["inspect", "--json", signedOut]);
    assert.equal(inspected.code, 0, inspected.stderr);
    const info = JSON.parse(inspected.stdout) as {
      verity?: { rootHash?: string };
      signature?: { rootHash?: string };
    };
    assert.equal(info.verity?.rootHash, signed.rootHash);
    assert.equal(info.signature?.rootHash, signed.rootHash);
    const plainInfo = JSON.parse((await runExtctl(["inspect", "--json", plainOut])).stdout) as {
      verity?: { rootHash?: string };
    };
    assert.equal(plainInfo.verity?.rootHash, plain.rootHash);

    const trusted = await runExtctl(["verify", signedOut, "--trust", fleet.cert]);
    assert.equal(trusted.code, 0, trusted.stdout + trusted.stderr);
    const full = await runExtctl(["verify", "--full", signedOut, "--trust", fleet.cert]);
    assert.equal(full.code, 0, full.stdout + full.stderr);
    assert.equal((await runExtctl(["verify", plainOut, "--trust", fleet.cert])).code, 11);
    assert.equal((await runExtctl(["verify", signedOut, "--trust", other.cert])).code, 12);
  });
}

test("boot --policy signed links only the repart image signed by the trusted key", async (t) => {
  if (!requirePeers(t, PEERS, { root: true }) || !needs(t, "repartMakeDdi")) return;
  const work = await tempDir(t);
  const fleet = makeSigningCert(work, "fleet");
  const other = makeSigningCert(work, "other");
  const root = await tempRoot(t);
  const images = {
    "good.raw": repart(
      "sysext",
      await tree(work, "sysext", "good"),
      path.join(work, "good.raw"),
      fleet,
    ),
    "plain.raw": repart(
      "sysext",
      await tree(work, "sysext", "plain"),
      path.join(work, "plain.raw"),
    ),
    "foreign.raw": repart(
      "sysext",
      await tree(work, "sysext", "foreign"),
      path.join(work, "foreign.raw"),
      other,
    ),
  };
  await mkdir(path.join(root, STORE, "common"), { recursive: true });
  for (const name of Object.keys(images)) {
    await copyFile(path.join(work, name), path.join(root, STORE, name));
    await symlink(`../${name}`, path.join(root, STORE, "common", name));
  }
  await mkdir(path.join(root, "etc/verity.d"), { recursive: true });
  await copyFile(fleet.cert, path.join(root, "etc/verity.d/fleet.crt"));
  const cmdline = path.join(work, "cmdline");
  await writeFile(cmdline, "BOOT_IMAGE=/vmlinuz root=LABEL=COS_ACTIVE ro\n");
  const r = await runExtctl([
    "--root",
    root,
    "boot",
    "--cmdline",
    cmdline,
    "--policy",
    "signed",
    "--no-refresh",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as {
    linked: { name: string }[];
    skipped: { name: string; outcome?: string }[];
  };
  assert.deepEqual(
    result.linked.map((l) => l.name),
    ["good.raw"],
  );
  assert.deepEqual(Object.fromEntries(result.skipped.map((s) => [s.name, s.outcome])), {
    "foreign.raw": "untrusted-signer",
    "plain.raw": "unsigned",
  });
  assert.deepEqual(await readdir(path.join(root, "run/extensions")), ["good.raw"]);
});

test("extctl build's default images pass immucore's systemd-dissect --validate with the signed policy", async (t) => {
  if (!requirePeers(t, PEERS, { root: true }) || !needs(t, "dissectValidate")) return;
  // The check reads /etc/verity.d of the running system: only inside a lane may the test write it.
  if (process.env.EXTCTL_LANE === undefined) {
    if (process.env.CI === "true")
      throw new Error("this test writes /etc/verity.d: run it in a lane");
    t.skip("writes /etc/verity.d: runs inside a lane (EXTCTL_LANE)");
    return;
  }
  const work = await tempDir(t);
  const fleet = makeSigningCert(work, "fleet");
  const other = makeSigningCert(work, "other");
  await mkdir("/etc/verity.d", { recursive: true });
  const certFile = "/etc/verity.d/extctl-test-fleet.crt";
  await copyFile(fleet.cert, certFile);
  t.after(() => spawnSync("rm", ["-f", certFile]));
  const validate = (image: string) =>
    spawnSync("systemd-dissect", ["--validate", `--image-policy=${SIGNED_POLICY}`, image], {
      encoding: "utf8",
    });
  for (const kind of ["sysext", "confext"] as const) {
    const out = path.join(work, `out-${kind}`);
    await mkdir(out);
    const built = await runExtctl([
      "build",
      kind,
      "tool",
      await tree(work, kind, "tool"),
      "-o",
      out,
      "--private-key",
      fleet.key,
      "--certificate",
      fleet.cert,
    ]);
    assert.equal(built.code, 0, built.stderr);
    const image = path.join(out, `tool.${kind}.raw`);
    const v = validate(image);
    assert.equal(v.status, 0, `${kind}: ${v.stderr}`);

    // Unsigned: no signature partition, so the signed policy's structure is not met.
    const plainOut = path.join(work, `plain-${kind}`);
    await mkdir(plainOut);
    assert.equal(
      (await runExtctl(["build", kind, "tool", await tree(work, kind, "tool"), "-o", plainOut]))
        .code,
      0,
    );
    assert.notEqual(validate(path.join(plainOut, `tool.${kind}.raw`)).status, 0);

    // Signed by a key nobody trusts: --validate passes (structure only); extctl refuses it.
    const foreignOut = path.join(work, `foreign-${kind}`);
    await mkdir(foreignOut);
    const foreign = await runExtctl([
      "build",
      kind,
      "tool",
      await tree(work, kind, "tool"),
      "-o",
      foreignOut,
      "--private-key",
      other.key,
      "--certificate",
      other.cert,
    ]);
    assert.equal(foreign.code, 0, foreign.stderr);
    const foreignImage = path.join(foreignOut, `tool.${kind}.raw`);
    assert.equal(validate(foreignImage).status, 0, "--validate does not check who signed");
    assert.equal((await runExtctl(["verify", foreignImage])).code, 12);
    assert.equal((await runExtctl(["verify", image])).code, 0);
  }
});
