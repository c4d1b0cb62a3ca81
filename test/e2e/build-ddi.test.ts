// extctl build against the real peers: systemd-dissect reads the DDI, veritysetup verifies the
// hash partition, openssl verifies the signature, systemd-sysext 252 merges the image.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmod,
  link,
  mkdir,
  readdir,
  readFile,
  rename,
  symlink,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { createContext } from "../../src/util/context.js";
import { MemoryLogger } from "../../src/util/log.js";
import { buildImage, type BuildOptions, type BuildResult } from "../../src/operations/build.js";
import { makeSigningCert } from "../helpers/keys.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { runExtctl } from "../helpers/cli.js";
import { NO_DEVICE_MAPPER, mergesVerityDdiWithoutDm, systemdVersion } from "../helpers/lane.js";

function ctx() {
  return createContext({
    log: new MemoryLogger(),
    env: { ...process.env, SOURCE_DATE_EPOCH: "1700000000" },
  });
}

async function helloTree(t: TestContext): Promise<string> {
  const dir = await tempDir(t, "extctl-build-src-");
  await mkdir(path.join(dir, "usr/bin"), { recursive: true });
  await mkdir(path.join(dir, "usr/share/hello"), { recursive: true });
  await mkdir(path.join(dir, "etc"), { recursive: true });
  await writeFile(path.join(dir, "usr/bin/hello"), "#!/bin/sh\necho hello from the sysext\n");
  await chmod(path.join(dir, "usr/bin/hello"), 0o755);
  await writeFile(path.join(dir, "usr/share/hello/data"), Buffer.alloc(300_000, 7));
  await link(path.join(dir, "usr/share/hello/data"), path.join(dir, "usr/share/hello/data2"));
  await symlink("../bin/hello", path.join(dir, "usr/share/hello/link"));
  await writeFile(path.join(dir, "etc/dropped"), "not in a sysext\n");
  return dir;
}

async function keyPair(t: TestContext, cn = "extctl test"): Promise<{ key: string; cert: string }> {
  return makeSigningCert(await tempDir(t, "extctl-keys-"), "signing", { subject: `/CN=${cn}` });
}

function build(
  options: Partial<BuildOptions> & Pick<BuildOptions, "source" | "outputDir">,
): Promise<BuildResult> {
  return buildImage(ctx(), { kind: "sysext", name: "hello", arch: "amd64", ...options });
}

/**
 * Makes `ddi` (in ROOT/run/extensions) mergeable here. Where systemd sets up dm-verity for it
 * regardless (mergesVerityDdiWithoutDm), asserts that merging the DDI fails for that reason only,
 * then puts its data partition, as a bare image of the same name, in its place: the release
 * files and content are the build's, only the verity layer is left out.
 */
async function mergeableHere(
  t: TestContext,
  root: string,
  ddi: string,
  partitions: BuildResult["partitions"],
  env: NodeJS.ProcessEnv,
): Promise<void> {
  if (mergesVerityDdiWithoutDm()) return;
  const r = spawnSync("systemd-sysext", [`--root=${root}`, "merge"], { encoding: "utf8", env });
  assert.notEqual(r.status, 0, "the DDI cannot merge without device-mapper");
  assert.match(r.stderr, NO_DEVICE_MAPPER);
  const data = partitions![0]!;
  const bare = `${ddi}.data`;
  extract(ddi, data.offset, data.size, bare);
  await rename(bare, ddi);
  t.diagnostic(
    `systemd ${systemdVersion()} needs dm-verity for the DDI (none here): its data partition merges instead`,
  );
}

function extract(image: string, offset: number, size: number, out: string): void {
  run("dd", [
    `if=${image}`,
    `of=${out}`,
    "bs=512",
    `skip=${offset / 512}`,
    `count=${size / 512}`,
    "status=none",
  ]);
}

test("a signed erofs build is a DDI that systemd-dissect, veritysetup and openssl accept", async (t) => {
  if (
    !requirePeers(t, ["systemd-dissect", "veritysetup", "openssl", "mkfs.erofs", "sgdisk"], {
      root: true,
    })
  )
    return;
  const src = await helloTree(t);
  const out = await tempDir(t);
  const { key, cert } = await keyPair(t);
  const result = await build({ source: src, outputDir: out, privateKey: key, certificate: cert });
  assert.equal(result.path, path.join(out, "hello.sysext.raw"));
  assert.deepEqual(await readdir(out), ["hello.sysext.raw"]);

  const dissect = JSON.parse(run("systemd-dissect", ["--json=short", result.path])) as {
    mounts: {
      designator: string;
      architecture: string;
      verity: string | null;
      fstype: string;
      partition_uuid: string;
      partition_label: string;
    }[];
  };
  assert.deepEqual(
    dissect.mounts.map((m) => [m.designator, m.architecture, m.partition_label]),
    [
      ["root", "x86-64", "root-x86-64"],
      ["root-verity", "x86-64", "root-x86-64-verity"],
      ["root-verity-sig", "x86-64", "root-x86-64-verity-sig"],
    ],
  );
  const root = dissect.mounts[0]!;
  assert.equal(root.fstype, "erofs");
  assert.equal(root.verity, "signed");
  assert.equal(root.partition_uuid.replace(/-/g, ""), result.rootHash!.slice(0, 32));
  assert.equal(dissect.mounts[1]!.partition_uuid.replace(/-/g, ""), result.rootHash!.slice(32));

  // Independent GPT checks.
  assert.match(run("sgdisk", ["-v", result.path]), /No problems found/);

  const [data, verity, sig] = result.partitions!;
  const work = await tempDir(t);
  extract(result.path, data!.offset, data!.size, path.join(work, "data"));
  extract(result.path, verity!.offset, verity!.size, path.join(work, "hash"));
  extract(result.path, sig!.offset, sig!.size, path.join(work, "sig"));

  // The release file, read out of the data partition by systemd itself (from the partition as
  // a file: systemd 262 would set up dm-verity for the whole DDI, and there is no device-mapper).
  const release = run("systemd-dissect", [
    "--copy-from",
    path.join(work, "data"),
    "/usr/lib/extension-release.d/extension-release.hello",
    "-",
  ]);
  assert.match(release, /^ID=_any$/m);
  assert.match(release, /^ARCHITECTURE=x86-64$/m);
  assert.match(release, /^SYSEXT_ID=hello$/m);
  run("veritysetup", [
    "verify",
    path.join(work, "data"),
    path.join(work, "hash"),
    result.rootHash!,
  ]);
  assert.throws(() =>
    run("veritysetup", [
      "verify",
      path.join(work, "data"),
      path.join(work, "hash"),
      "00".repeat(32),
    ]),
  );

  const json = (await readFile(path.join(work, "sig"))).toString("utf8").replace(/\0+$/, "");
  const parsed = JSON.parse(json) as {
    rootHash: string;
    signature: string;
    certificateFingerprint: string;
  };
  assert.equal(parsed.rootHash, result.rootHash);
  await writeFile(path.join(work, "sig.der"), Buffer.from(parsed.signature, "base64"));
  await writeFile(path.join(work, "content"), result.rootHash!);
  run("openssl", [
    "smime",
    "-verify",
    "-binary",
    "-noverify",
    "-inform",
    "der",
    "-in",
    path.join(work, "sig.der"),
    "-content",
    path.join(work, "content"),
    "-certfile",
    cert,
    "-out",
    "/dev/null",
  ]);
});

test("two builds of the same input and seed are byte-identical; another seed changes the bytes", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs", "openssl"], { root: true })) return;
  const src = await helloTree(t);
  const { key, cert } = await keyPair(t);
  const a = await build({
    source: src,
    outputDir: await tempDir(t),
    privateKey: key,
    certificate: cert,
  });
  const b = await build({
    source: src,
    outputDir: await tempDir(t),
    privateKey: key,
    certificate: cert,
  });
  assert.equal(a.sha256, b.sha256);
  assert.deepEqual(await readFile(a.path), await readFile(b.path));
  const c = await build({
    source: src,
    outputDir: await tempDir(t),
    seed: "750b6cd5-c4ae-4012-a15e-7be3c29e6a47",
  });
  assert.notEqual(c.sha256, a.sha256);
});

test(`a signed erofs image built with --systemd 252 merges with systemd-sysext ${systemdVersion() || 252} and its program runs`, async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mkfs.erofs", "openssl"], { root: true })) return;
  const src = await helloTree(t);
  const root = await tempRoot(t);
  await mkdir(path.join(root, "run/extensions"), { recursive: true });
  const result = await build({
    source: src,
    outputDir: path.join(root, "run/extensions"),
    systemd: 252,
    ...(await keyPair(t).then(({ key, cert }) => ({ privateKey: key, certificate: cert }))),
  });
  assert.deepEqual(result.releaseFiles, [
    "usr/lib/extension-release.d/extension-release.hello",
    "usr/lib/extension-release.d/extension-release.hello.sysext",
  ]);
  const env = { ...process.env, SYSTEMD_DISSECT_VERITY_EMBEDDED: "0" };
  await mergeableHere(t, root, result.path, result.partitions, env);
  run("systemd-sysext", [`--root=${root}`, "merge"], { env });
  try {
    const merged = await readFile(path.join(root, "usr/.systemd-sysext/extensions"), "utf8");
    // 252-254 name hello.sysext.raw "hello.sysext"; 255 and later "hello".
    assert.match(merged, systemdVersion() < 255 ? /^hello\.sysext$/m : /^hello$/m);
    assert.equal(run(path.join(root, "usr/bin/hello"), []), "hello from the sysext\n");
    assert.equal((await readFile(path.join(root, "usr/share/hello/data"))).length, 300_000);
  } finally {
    run("systemd-sysext", [`--root=${root}`, "unmerge"], { env });
  }
});

test("the CLI prints the image's SHA-256 in --json and the file has it", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs"], { root: true })) return;
  const src = await helloTree(t);
  const out = await tempDir(t);
  const r = await runExtctl(
    ["build", "confext", "conf", src, "--output", out, "--arch", "arm64", "--json"],
    {
      env: { SOURCE_DATE_EPOCH: "1700000000" },
    },
  );
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as BuildResult;
  assert.equal(result.path, path.join(out, "conf.confext.raw"));
  assert.equal(result.architecture, "arm64");
  assert.equal(result.signed, false);
  assert.deepEqual(
    result.partitions!.map((p) => p.label),
    ["root-arm64", "root-arm64-verity"],
  );
  const sum = run("sha256sum", [result.path]).split(" ")[0];
  assert.equal(result.sha256, sum);
  assert.match(
    r.stderr,
    /dropped 3 entries outside etc\/: usr \(3\)|dropped \d+ entries outside etc\//,
  );
});

test(`without --systemd 252, systemd-sysext ${systemdVersion() || 252} ${systemdVersion() >= 255 ? "merges the image (its name there is hello)" : "does not merge the image (its name there is hello.sysext)"}`, async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs"], { root: true })) return;
  const src = await helloTree(t);
  const root = await tempRoot(t);
  await mkdir(path.join(root, "run/extensions"), { recursive: true });
  const built = await build({
    source: src,
    outputDir: path.join(root, "run/extensions"),
    format: "squashfs",
  });
  const env = { ...process.env, SYSTEMD_DISSECT_VERITY_EMBEDDED: "0" };
  if (systemdVersion() >= 255) {
    await mergeableHere(t, root, built.path, built.partitions, env);
    run("systemd-sysext", [`--root=${root}`, "merge"], { env });
    try {
      const merged = await readFile(path.join(root, "usr/.systemd-sysext/extensions"), "utf8");
      assert.match(merged, /^hello$/m);
    } finally {
      run("systemd-sysext", [`--root=${root}`, "unmerge"], { env });
    }
    return;
  }
  assert.throws(() => run("systemd-sysext", [`--root=${root}`, "merge"], { env }));
  await assert.rejects(readFile(path.join(root, "usr/.systemd-sysext/extensions"), "utf8"));
});
