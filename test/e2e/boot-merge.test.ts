// `extctl boot` against the real peers: signed squashfs DDIs made with `extctl build`
// (mksquashfs) and keys from openssl; systemd-sysext 252 merges what boot linked (verity
// activation off: these kernels have no device-mapper); trusted boot with the firmware's db made
// by efitools' cert-to-efi-sig-list, where only the image signed by that key loads.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, readFile, readdir, rename, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { makeSigningCert } from "../helpers/keys.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { runExtctl } from "../helpers/cli.js";
import { NO_DEVICE_MAPPER, mergesVerityDdiWithoutDm, systemdVersion } from "../helpers/lane.js";
import {
  LOADER_DEVICE_PART_UUID,
  LOADER_ENTRY_SELECTED,
} from "../../src/domain/activate/boot-detect.js";

const STORE = "var/lib/kairos/extensions";
const PEERS = ["systemd-sysext", "mksquashfs", "openssl", "cert-to-efi-sig-list"];
const ENV = { SYSTEMD_DISSECT_VERITY_EMBEDDED: "0" };

function keyPair(dir: string, name: string): { key: string; cert: string } {
  return makeSigningCert(dir, name, { type: "ec" });
}

/** Builds NAME.raw (renamed from NAME.sysext.raw so systemd 252 names it NAME). */
async function image(
  work: string,
  name: string,
  sign?: { key: string; cert: string },
): Promise<string> {
  const tree = path.join(work, `tree-${name}`);
  await mkdir(path.join(tree, "usr/share", name), { recursive: true });
  await writeFile(path.join(tree, "usr/share", name, "hello"), `hello from ${name}\n`);
  const out = path.join(work, "out");
  await mkdir(out, { recursive: true });
  const args = [
    "build",
    "sysext",
    name,
    tree,
    "-o",
    out,
    "--format",
    "squashfs",
    "--verity-block-size",
    "512",
  ];
  if (sign) args.push("--private-key", sign.key, "--certificate", sign.cert);
  const r = await runExtctl(args);
  assert.equal(r.code, 0, r.stderr);
  const file = path.join(out, `${name}.raw`);
  await rename(path.join(out, `${name}.sysext.raw`), file);
  return file;
}

async function enable(root: string, file: string, profile: string): Promise<void> {
  const name = path.basename(file);
  await mkdir(path.join(root, STORE, profile), { recursive: true });
  await writeFile(path.join(root, STORE, name), await readFile(file));
  await symlink(`../${name}`, path.join(root, STORE, profile, name));
}

async function merged(root: string): Promise<string[]> {
  const text = await readFile(path.join(root, "usr/.systemd-sysext/extensions"), "utf8").catch(
    () => "",
  );
  return text.split("\n").filter(Boolean).sort();
}

/**
 * As on a node, ROOT/run is a tmpfs of its own (systemd-sysext --root only sees linked images
 * through one); the test runs in a private mount namespace, so nothing leaks to the host.
 * Returns the cleanup that unmerges and unmounts, to run before the temp root is deleted.
 */
function mountRun(root: string): () => void {
  run("mount", ["-t", "tmpfs", "tmpfs", path.join(root, "run")]);
  return () => {
    spawnSync("systemd-sysext", [`--root=${root}`, "unmerge"], { stdio: "ignore" });
    spawnSync("umount", ["-l", path.join(root, "run")], { stdio: "ignore" });
  };
}

interface BootJson {
  state: string;
  uki: boolean;
  policy?: { policy: string; source: string; importedKeys: string[] };
  linked: { name: string; profile: string; action: string }[];
  skipped: { name: string; profile: string; outcome?: string; reason?: string }[];
  refresh: { kind: string; refreshed: boolean; error?: string }[];
}

test("boot links the profile and common, systemd-sysext 252 merges them, and a rerun changes nothing", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const work = await tempDir(t);
  const keys = keyPair(work, "fleet");
  const root = await tempRoot(t);
  const cleanup = mountRun(root);
  try {
    await bootAndMerge(t, root, work, keys);
  } finally {
    cleanup();
  }
});

/**
 * Where systemd cannot merge a verity DDI on this machine (see mergesVerityDdiWithoutDm), boot
 * must still link what it linked, exit 1 and name the failure; returns true when that is so.
 */
function provedUnmergeable(
  t: TestContext,
  code: number,
  result: BootJson,
  merged: string[],
): boolean {
  if (mergesVerityDdiWithoutDm()) return false;
  assert.equal(code, 1, "boot exits 1 when systemd merged nothing");
  const refresh = result.refresh.find((r) => r.kind === "sysext");
  assert.equal(refresh?.refreshed, false);
  assert.match(refresh?.error ?? "", NO_DEVICE_MAPPER);
  assert.deepEqual(merged, []);
  t.diagnostic(
    `systemd ${systemdVersion()} sets up dm-verity for these DDIs and this kernel has no device-mapper: links and the refusal are checked, the merge is not`,
  );
  return true;
}

async function bootAndMerge(
  t: TestContext,
  root: string,
  work: string,
  keys: { key: string; cert: string },
) {
  await enable(root, await image(work, "alpha", keys), "active");
  await enable(root, await image(work, "beta", keys), "common");
  await enable(root, await image(work, "gamma", keys), "passive");
  const cmdline = path.join(work, "cmdline");
  await writeFile(cmdline, "BOOT_IMAGE=/vmlinuz root=LABEL=COS_ACTIVE ro\n");

  const first = await runExtctl(["--root", root, "boot", "--cmdline", cmdline, "--json"], {
    env: ENV,
  });
  const result = JSON.parse(first.stdout) as BootJson;
  assert.equal(result.state, "active");
  assert.deepEqual(result.linked.map((l) => `${l.profile}/${l.name}`).sort(), [
    "active/alpha.raw",
    "common/beta.raw",
  ]);
  if (provedUnmergeable(t, first.code, result, await merged(root))) return;
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(result.refresh.find((r) => r.kind === "sysext")?.refreshed, true);
  assert.deepEqual(await merged(root), ["alpha", "beta"]);
  assert.equal(
    await readFile(path.join(root, "usr/share/alpha/hello"), "utf8"),
    "hello from alpha\n",
  );
  await assert.rejects(stat(path.join(root, "usr/share/gamma/hello")));
  assert.deepEqual(await readdir(path.join(root, "run/cos")), ["active_mode"]);

  const second = await runExtctl(["--root", root, "boot", "--cmdline", cmdline, "--json"], {
    env: ENV,
  });
  assert.equal(second.code, 0, second.stderr);
  const again = JSON.parse(second.stdout) as BootJson;
  assert.ok(
    again.linked.every((l) => l.action === "unchanged"),
    "no link was made twice",
  );
  assert.deepEqual(await merged(root), ["alpha", "beta"]);
}

function efiVar(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x07, 0, 0, 0]), data]);
}

test("trusted boot: EFI db keys are imported; good loads, unsigned and foreign-key images are skipped", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const work = await tempDir(t);
  const fleet = keyPair(work, "fleet");
  const rogue = keyPair(work, "rogue");
  const root = await tempRoot(t);
  const cleanup = mountRun(root);
  try {
    await trustedBoot(t, root, work, fleet, rogue);
  } finally {
    cleanup();
  }
});

async function trustedBoot(
  t: TestContext,
  root: string,
  work: string,
  fleet: { key: string; cert: string },
  rogue: { key: string; cert: string },
) {
  await enable(root, await image(work, "good", fleet), "active");
  await enable(root, await image(work, "plain"), "active");
  await enable(root, await image(work, "foreign", rogue), "common");

  // The firmware: a UKI boot from disk, entry active.conf, db holding the fleet certificate.
  const efivars = path.join(root, "sys/firmware/efi/efivars");
  await mkdir(efivars, { recursive: true });
  await writeFile(
    path.join(efivars, LOADER_DEVICE_PART_UUID),
    efiVar(Buffer.from("0b5d2b6e-1f23-4e0a-9d11-2d5a7c2c1a01\0", "utf16le")),
  );
  await writeFile(
    path.join(efivars, LOADER_ENTRY_SELECTED),
    efiVar(Buffer.from("active.conf\0", "utf16le")),
  );
  const esl = path.join(work, "db.esl");
  run("cert-to-efi-sig-list", [fleet.cert, esl]);
  await writeFile(
    path.join(efivars, "db-d719b2cb-3d3a-4596-a3bc-dad00e67656f"),
    efiVar(await readFile(esl)),
  );
  // The rogue key as KEK: it may sign db updates, but boot trusts db alone (it signs nothing
  // that boots), so the image it signed stays out.
  const kekEsl = path.join(work, "kek.esl");
  run("cert-to-efi-sig-list", [rogue.cert, kekEsl]);
  await writeFile(
    path.join(efivars, "KEK-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
    efiVar(await readFile(kekEsl)),
  );
  const cmdline = path.join(work, "cmdline");
  await writeFile(cmdline, "console=ttyS0 rd.immucore.uki\n");

  const r = await runExtctl(
    ["--root", root, "boot", "--cmdline", cmdline, "--efivars", efivars, "--json"],
    { env: ENV },
  );
  const result = JSON.parse(r.stdout) as BootJson;
  assert.equal(result.state, "active");
  assert.equal(result.uki, true);
  assert.equal(result.policy?.policy, "signed");
  assert.match(result.policy?.source ?? "", /trusted boot/);
  assert.deepEqual(result.policy?.importedKeys, ["/run/verity.d/DB0.crt"]);
  assert.deepEqual(
    result.linked.map((l) => l.name),
    ["good.raw"],
  );
  const why = Object.fromEntries(result.skipped.map((s) => [s.name, s.outcome]));
  assert.deepEqual(why, { "plain.raw": "unsigned", "foreign.raw": "untrusted-signer" });
  assert.match(r.stderr, /skipping sysext plain\.raw/);
  assert.deepEqual((await readdir(path.join(root, "run/extensions"))).sort(), ["good.raw"]);
  assert.deepEqual((await readdir(path.join(root, "run/cos"))).sort(), [
    "active_mode",
    "uki_boot_mode",
  ]);
  if (provedUnmergeable(t, r.code, result, await merged(root))) return;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await merged(root), ["good"]);
}

/** A bare squashfs NAME.raw whose release file is extension-release.RELEASE. */
function bareImage(work: string, name: string, release: string): string {
  const tree = path.join(work, `bare-${name}`);
  run("mkdir", [
    "-p",
    path.join(tree, "usr/lib/extension-release.d"),
    path.join(tree, "usr/share", name),
  ]);
  run("sh", [
    "-c",
    'printf "ID=_any\\n" > "$1"',
    "sh",
    path.join(tree, `usr/lib/extension-release.d/extension-release.${release}`),
  ]);
  run("sh", [
    "-c",
    'printf "hello from %s\\n" "$2" > "$1"',
    "sh",
    path.join(tree, "usr/share", name, "hello"),
    name,
  ]);
  const file = path.join(work, `${name}.raw`);
  run("mksquashfs", [tree, file, "-noappend", "-all-root", "-quiet", "-no-progress"]);
  return file;
}

test("boot links only what check calls MERGES: an image whose release file does not match its name is skipped with the reason, the good one beside it merges", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs"], { root: true })) return;
  const work = await tempDir(t);
  const root = await tempRoot(t);
  const cleanup = mountRun(root);
  try {
    await enable(root, bareImage(work, "good", "good"), "active");
    // systemd 252 aborts the whole merge on this one ("a good image beside it is not merged").
    await enable(root, bareImage(work, "misnamed", "something-else"), "active");
    const cmdline = path.join(work, "cmdline");
    await writeFile(cmdline, "BOOT_IMAGE=/vmlinuz root=LABEL=COS_ACTIVE ro\n");
    const r = await runExtctl(
      ["--root", root, "boot", "--cmdline", cmdline, "--policy", "any", "--json"],
      { env: ENV },
    );
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as BootJson;
    assert.deepEqual(
      result.linked.map((l) => l.name),
      ["good.raw"],
    );
    const skipped = result.skipped.find((s) => s.name === "misnamed.raw");
    assert.equal(skipped?.outcome, "refused");
    assert.match(skipped?.reason ?? "", /REFUSED for systemd \d+: .*extension-release/);
    assert.match(r.stderr, /skipping sysext misnamed\.raw .*REFUSED/);
    assert.deepEqual(await readdir(path.join(root, "run/extensions")), ["good.raw"]);
    assert.deepEqual(await merged(root), ["good"]);
    assert.equal(
      await readFile(path.join(root, "usr/share/good/hello"), "utf8"),
      "hello from good\n",
    );
  } finally {
    cleanup();
  }
});
