// Issue 12's signed-policy bypasses, at the level where they mattered: `boot --policy signed`
// and `enable --policy signed` must link only what systemd would mount verified. Each crafted
// image is made here from a signed DDI built by extctl: unsigned partitions that systemd prefers
// (a secondary-architecture root beside signed usr partitions, a newer-labelled root), a squashfs
// whose first file is the signed DDI's GPT (a polyglot systemd mounts as the bare squashfs), and
// a bare image whose verity and signature sit in sidecars systemd is never shown.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFile, mkdir, readFile, readdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { runExtctl } from "../helpers/cli.js";
import { GRAFTS, buildSignedDdi, graft, squashfs, systemdMounts } from "../helpers/crafted-ddi.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

const STORE = "var/lib/kairos/extensions";

function graftNamed(name: string) {
  const g = GRAFTS.find((x) => x.name === name);
  assert.ok(g, name);
  return g;
}

/** A squashfs whose first (uncompressed) file carries the signed DDI's protective MBR and GPT. */
async function polyglotOf(signed: string, dir: string): Promise<Buffer> {
  const ddi = await readFile(signed);
  const src = path.join(dir, "poly-src");
  await mkdir(path.join(src, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(path.join(src, "payload"), ddi.subarray(96, 96 + 64 * 1024));
  await writeFile(
    path.join(src, "usr/lib/extension-release.d/extension-release.poly"),
    "ID=_any\n",
  );
  const out = path.join(dir, "poly.sqfs");
  run("mksquashfs", [src, out, "-quiet", "-noappend", "-noI", "-noD", "-noF", "-no-fragments"]);
  const sq = await readFile(out);
  const img = Buffer.from(ddi);
  sq.copy(img, 0);
  return img;
}

/** A bare squashfs with NAME.verity, NAME.roothash and NAME.roothash.p7s signed by `signer`. */
async function bareWithSidecars(storeDir: string, dir: string, key: string, cert: string) {
  const src = path.join(dir, "bare-src");
  await mkdir(path.join(src, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(
    path.join(src, "usr/lib/extension-release.d/extension-release.bare"),
    "ID=_any\n",
  );
  const image = path.join(storeDir, "bare.raw");
  run("mksquashfs", [src, image, "-quiet", "-noappend", "-all-root"]);
  const out = run("veritysetup", ["format", image, path.join(storeDir, "bare.verity")]);
  const rootHash = /Root hash:\s*([0-9a-f]+)/.exec(out)![1]!;
  await writeFile(path.join(storeDir, "bare.roothash"), rootHash);
  execFileSync("sh", [
    "-c",
    `printf %s "${rootHash}" | openssl smime -sign -nocerts -noattr -binary -signer "${cert}" -inkey "${key}" -outform der -out "${path.join(storeDir, "bare.roothash.p7s")}"`,
  ]);
}

test("boot and enable under the signed policy link only images systemd would mount verified", async (t) => {
  if (
    !requirePeers(t, ["systemd-dissect", "sfdisk", "mksquashfs", "openssl", "veritysetup"], {
      root: true,
    })
  )
    return;
  const dir = await tempDir(t);
  const fs = await squashfs(dir);
  const { file: signed, cert, key } = await buildSignedDdi(dir);
  const root = await tempRoot(t);
  const store = path.join(root, STORE);
  await mkdir(path.join(store, "active"), { recursive: true });
  await mkdir(path.join(root, "etc/verity.d"), { recursive: true });
  await copyFile(cert, path.join(root, "etc/verity.d/fleet.crt"));

  // Named after its release file (extension-release.img): boot links only what would merge.
  await copyFile(signed, path.join(store, "img.raw"));
  await graft(
    signed,
    graftNamed("retyped to usr + unsigned root-x86"),
    path.join(store, "secondary.raw"),
    fs,
  );
  await graft(
    signed,
    graftNamed("+ unsigned root-x86-64 with a newer label"),
    path.join(store, "newer.raw"),
    fs,
  );
  await graft(signed, graftNamed("+ unsigned usr-x86-64"), path.join(store, "withusr.raw"), fs);
  await writeFile(path.join(store, "poly.raw"), await polyglotOf(signed, dir));
  await bareWithSidecars(store, dir, key, cert);
  const crafted = ["bare.raw", "newer.raw", "poly.raw", "secondary.raw", "withusr.raw"];

  // What systemd would do with each: the good one, mount its signed partition 1; a crafted one,
  // refuse it, mount unverified data, or put the verity tree over another partition.
  const verifiedMount = (name: string) => {
    const mounts = systemdMounts(path.join(store, name));
    const data =
      mounts?.find((m) => m.designator === "root") ?? mounts?.find((m) => m.designator === "usr");
    return data?.verity === "signed" && data.partno === 1 && mounts?.length === 3;
  };
  assert.ok(verifiedMount("img.raw"), "systemd mounts the good image's signed partition");
  for (const name of crafted) assert.ok(!verifiedMount(name), `systemd mounts ${name} verified`);
  for (const name of ["img.raw", ...crafted])
    await symlink(`../${name}`, path.join(store, "active", name));

  const cmdline = path.join(dir, "cmdline");
  await writeFile(cmdline, "root=LABEL=COS_ACTIVE\n");
  const r = await runExtctl(
    ["--root", root, "boot", "--cmdline", cmdline, "--policy", "signed", "--no-refresh", "--json"],
    {},
  );
  const result = JSON.parse(r.stdout) as {
    linked: { name: string }[];
    skipped: { name: string; outcome?: string; reason?: string }[];
  };
  assert.deepEqual(
    result.linked.map((l) => l.name),
    ["img.raw"],
    r.stderr,
  );
  assert.deepEqual(result.skipped.map((s) => s.name).sort(), crafted);
  for (const s of result.skipped) assert.ok(s.reason && s.reason.length > 10, JSON.stringify(s));
  assert.deepEqual(await readdir(path.join(root, "run/extensions")), ["img.raw"]);

  // enable checks the same way: each crafted image is refused under --policy signed.
  for (const name of crafted) {
    const e = await runExtctl([
      "--root",
      root,
      "sysext",
      "enable",
      name.replace(/\.raw$/, ""),
      "--passive",
      "--policy",
      "signed",
    ]);
    assert.notEqual(e.code, 0, `${name} was enabled under --policy signed: ${e.stderr}`);
    assert.match(e.stderr, /signed/);
  }
  const passive = await readdir(path.join(store, "passive")).catch(() => []);
  assert.deepEqual(passive, []);
  const good = await runExtctl([
    "--root",
    root,
    "sysext",
    "enable",
    "img",
    "--passive",
    "--policy",
    "signed",
  ]);
  assert.equal(good.code, 0, good.stderr);
});
