// Crash safety, continued: SIGKILL (the whole process group) at random moments of install from a
// real docker-registry, build, apply (file: and https: sources) and boot (real systemd-sysext).
//
// After every kill nothing partial is visible (store or build output), every link resolves, temp
// files belong to dead processes only; then an untouched rerun completes and sweeps those temps.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { requirePeers } from "../helpers/peers.js";
import { makeSigningCert } from "../helpers/keys.js";
import { startRegistry } from "../helpers/registry.js";
import { withHttpsServer } from "../helpers/https-server.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import {
  checkOutputDir,
  checkStore,
  extctl,
  faultTrials,
  runCrashTrials,
  sha256,
  sha256File,
  type CrashTrialOutcome,
} from "./lib.js";
import { randomImageBytes } from "../helpers/stub-image.js";

const TRIALS = faultTrials();
const STORE = "var/lib/kairos/extensions";

function report(t: TestContext, name: string, outcome: CrashTrialOutcome): void {
  t.diagnostic(
    `${name}: ${outcome.survived}/${TRIALS} survived, ${outcome.hitMidway} kills hit mid-run ` +
      `(an unkilled run takes ${outcome.calmMs} ms)`,
  );
  assert.deepEqual(outcome.failures, []);
}

/**
 * An RSA signer: RSA PKCS#1 v1.5 signatures are deterministic, so signed builds are byte-identical
 * (ECDSA draws a fresh nonce per signature, so two EC-signed builds differ in the signature).
 */
function keyPair(dir: string): { key: string; cert: string } {
  return makeSigningCert(dir, "signer", { subject: "/CN=crash-signer" });
}

/** Random bytes written to DIR/SUB/NAME; returns the path and digest. */
async function randomImage(dir: string, sub: string, name: string, bytes: number) {
  const data = randomImageBytes(bytes);
  const file = path.join(dir, sub, name);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, data);
  return { file, digest: sha256(data) };
}

test("kill -9 during install from an OCI registry leaves complete images only", async (t) => {
  if (!requirePeers(t, ["docker-registry"], { root: true })) return;
  const registry = await startRegistry(t);
  const dir = await tempDir(t);
  const root = await tempRoot(t);
  const insecure = ["--insecure-registry", registry.host];
  // Two versions under one name, so kills also hit a replacement of an installed image.
  const refs: string[] = [];
  const complete = new Set<string>();
  for (const tag of ["a", "b"]) {
    const image = await randomImage(dir, tag, "big.sysext.raw", 16 << 20);
    complete.add(image.digest);
    const published = await extctl([
      "publish",
      image.file,
      `oci://${registry.host}/exts/big:${tag}`,
      ...insecure,
    ]);
    assert.equal(published.code, 0, published.stderr);
    refs.push(published.stdout.trim());
  }
  const outcome = await runCrashTrials({
    name: "install oci: (docker-registry, published artifact)",
    trials: TRIALS,
    run: (i, killAfterMs) =>
      extctl(["--root", root, "sysext", "install", refs[Math.abs(i) % 2] as string, ...insecure], {
        ...(killAfterMs === undefined ? {} : { killAfterMs }),
      }),
    afterKill: async () => (await checkStore(root, complete, { allowTemps: true })).problems,
    afterRerun: async (i) => {
      const check = await checkStore(root, complete);
      const want = [...complete][i % 2];
      const got = check.images.get(`/${STORE}/big.sysext.raw`);
      return got === want
        ? check.problems
        : [...check.problems, `big.sysext.raw is ${got ?? "missing"}, not version ${i % 2}`];
    },
  });
  report(t, "install oci:", outcome);
});

test("kill -9 during build never leaves a partial image in the output dir", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs", "openssl"])) return;
  const dir = await tempDir(t);
  const { key, cert } = keyPair(dir);
  // A mixed tree (incompressible and compressible files, many small ones) big enough that kills
  // land in every stage: staging, mkfs.erofs, verity hashing, signing and assembly.
  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "usr/lib/crashy"), { recursive: true });
  await mkdir(path.join(tree, "usr/share/crashy"), { recursive: true });
  const text = Buffer.from("the quick brown fox jumps over the lazy dog; ".repeat(24000));
  for (let i = 0; i < 4; i++) {
    await writeFile(path.join(tree, "usr/lib/crashy", `r${i}.bin`), randomBytes(1 << 20));
    await writeFile(
      path.join(tree, "usr/lib/crashy", `t${i}.txt`),
      text.subarray(i, i + (1 << 20)),
    );
  }
  for (let i = 0; i < 200; i++)
    await writeFile(path.join(tree, "usr/share/crashy", `s${i}`), randomBytes(512).toString("hex"));
  const out = path.join(dir, "out");
  await mkdir(out);
  const expected = new Set(["crashy.sysext.raw"]);
  // Builds are reproducible, so there is exactly one complete image: the calibration run's.
  const complete = new Set<string>();
  const build = [
    "build",
    "sysext",
    "crashy",
    tree,
    "-o",
    out,
    "--compress",
    "lz4",
    "--private-key",
    key,
  ];
  const outcome = await runCrashTrials({
    name: "build (signed erofs DDI)",
    trials: TRIALS,
    run: async (i, killAfterMs) => {
      const r = await extctl([...build, "--certificate", cert], {
        ...(killAfterMs === undefined ? {} : { killAfterMs }),
      });
      if (i === -1 && r.code === 0)
        complete.add(await sha256File(path.join(out, "crashy.sysext.raw")));
      return r;
    },
    afterKill: () => checkOutputDir(out, expected, complete),
    afterRerun: async () => {
      const problems = await checkOutputDir(out, expected, complete, { noTemps: true });
      const names = await readdir(out);
      if (!names.includes("crashy.sysext.raw")) problems.push("the rerun wrote no image");
      return problems;
    },
    // Every other trial starts without an image, so kills hit both a first build and a rebuild.
    reset: async (i) => {
      if (i % 2 === 0) await rm(path.join(out, "crashy.sysext.raw"), { force: true });
    },
  });
  report(t, "build", outcome);
});

test("kill -9 during apply (file: and https: sources) leaves complete images and links", async (t) => {
  if (!requirePeers(t, ["openssl"], { root: true })) return;
  const dir = await tempDir(t);
  const root = await tempRoot(t);
  const tools = await randomImage(dir, "local", "tools.raw", 4 << 20);
  const net = [
    await randomImage(dir, "a", "net.raw", 12 << 20),
    await randomImage(dir, "b", "net.raw", 12 << 20),
  ];
  const server = await withHttpsServer(t, { dir: path.join(dir, "certs") });
  server.addFile("a/net.raw", net[0]!.file);
  server.addFile("b/net.raw", net[1]!.file);
  // Two versions of the file: each trial moves the https entry to the other one.
  const yamls: string[] = [];
  for (const [v, image] of net.entries()) {
    const yaml = path.join(dir, `node-${v}.yaml`);
    await writeFile(
      yaml,
      [
        "#cloud-config",
        "extensions:",
        "  sysext:",
        `    - source: file://${tools.file}`,
        `      sha256: ${tools.digest}`,
        "      profiles: [active, common]",
        `    - source: ${server.origin}/ok/${v === 0 ? "a" : "b"}/net.raw`,
        `      sha256: ${image.digest}`,
        "      profiles: [active]",
        "",
      ].join("\n"),
    );
    yamls.push(yaml);
  }
  const complete = new Set([tools.digest, ...net.map((n) => n.digest)]);
  const applyFile = (i: number) => yamls[Math.abs(i) % 2] as string;
  const stateProblems = async (): Promise<string[]> => {
    const text = await readFile(path.join(root, "var/lib/kairos/extctl-apply.json"), "utf8").catch(
      () => undefined,
    );
    if (text === undefined) return [];
    try {
      JSON.parse(text);
      return [];
    } catch {
      return [`extctl-apply.json is not whole JSON (${text.length} bytes)`];
    }
  };
  const outcome = await runCrashTrials({
    name: "apply (file: and https: sources)",
    trials: TRIALS,
    run: (i, killAfterMs) =>
      extctl(
        ["--root", root, "apply", applyFile(i), "--refresh", "none", "--ca-cert", server.caCert],
        { ...(killAfterMs === undefined ? {} : { killAfterMs }) },
      ),
    afterKill: async () => [
      ...(await checkStore(root, complete, { allowTemps: true })).problems,
      ...(await stateProblems()),
    ],
    afterRerun: async (i) => {
      const check = await checkStore(root, complete);
      const problems = [...check.problems, ...(await stateProblems())];
      const want = net[i % 2]!.digest;
      if (check.images.get(`/${STORE}/net.raw`) !== want)
        problems.push(`net.raw is not the version the file names (${i % 2})`);
      if (check.images.get(`/${STORE}/tools.raw`) !== tools.digest)
        problems.push("tools.raw is missing or wrong");
      for (const link of ["active/tools.raw", "common/tools.raw", "active/net.raw"]) {
        const names = await readdir(path.join(root, STORE, path.dirname(link))).catch(
          (): string[] => [],
        );
        if (!names.includes(path.basename(link))) problems.push(`no link ${link}`);
      }
      return problems;
    },
  });
  report(t, "apply", outcome);
});

test("kill -9 during boot (links, then systemd-sysext merges) leaves no dangling link", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs", "openssl", "unshare"], { root: true }))
    return;
  const dir = await tempDir(t);
  const root = await tempRoot(t);
  const { key, cert } = keyPair(dir);
  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "usr/share/crashboot"), { recursive: true });
  for (let i = 0; i < 16; i++)
    await writeFile(path.join(tree, "usr/share/crashboot", `f${i}`), randomBytes(32 * 1024));
  // Eight images, half active, half common; each built under its own name, because systemd 252
  // wants the release file named after the image (bootN.raw -> extension-release.bootN).
  const names = Array.from({ length: 8 }, (_, i) => `boot${i}.raw`);
  const complete = new Set<string>();
  const out = path.join(dir, "out");
  await mkdir(out);
  for (const [i, name] of names.entries()) {
    const stem = name.replace(/\.raw$/, "");
    const built = await extctl(
      ["build", "sysext", stem, tree, "-o", out, "--format", "squashfs"].concat([
        "--verity-block-size",
        "512",
        "--private-key",
        key,
        "--certificate",
        cert,
      ]),
    );
    assert.equal(built.code, 0, built.stderr);
    const image = path.join(out, `${stem}.sysext.raw`);
    complete.add(await sha256File(image));
    const profile = i % 2 === 0 ? "active" : "common";
    await mkdir(path.join(root, STORE, profile), { recursive: true });
    await copyFile(image, path.join(root, STORE, name));
    await symlink(`../${name}`, path.join(root, STORE, profile, name));
  }
  await mkdir(path.join(root, "etc/verity.d"), { recursive: true });
  await copyFile(cert, path.join(root, "etc/verity.d/crash-signer.crt"));
  const cmdline = path.join(dir, "cmdline");
  await writeFile(cmdline, "BOOT_IMAGE=/vmlinuz root=LABEL=COS_ACTIVE ro\n");
  const args = ["--root", root, "boot", "--cmdline", cmdline, "--policy", "signed", "--json"];
  const outcome = await runCrashTrials({
    name: "boot (8 signed images, merge by systemd-sysext)",
    trials: TRIALS,
    run: (_i, killAfterMs) =>
      extctl(args, {
        // Each run gets its own mount namespace: the merge of a killed run vanishes with it.
        namespace: true,
        nodeRoot: root,
        env: { SYSTEMD_DISSECT_VERITY_EMBEDDED: "0" },
        ...(killAfterMs === undefined ? {} : { killAfterMs }),
      }),
    afterKill: async () => (await checkStore(root, complete, { allowTemps: true })).problems,
    afterRerun: async (_i, rerun) => {
      const problems = (await checkStore(root, complete)).problems;
      const result = JSON.parse(rerun.stdout) as {
        linked: { name: string }[];
        skipped: { name: string; reason?: string }[];
        refresh: { kind: string; refreshed: boolean; error?: string }[];
      };
      const linked = result.linked.map((l) => l.name).sort();
      if (linked.join() !== names.join())
        problems.push(`linked ${linked.join(", ")}; skipped ${JSON.stringify(result.skipped)}`);
      const sysext = result.refresh.find((r) => r.kind === "sysext");
      if (!sysext?.refreshed) problems.push(`no merge: ${JSON.stringify(sysext)}`);
      const runtime = await readdir(path.join(root, "run/extensions")).catch((): string[] => []);
      if (
        runtime
          .filter((n) => !n.startsWith("."))
          .sort()
          .join() !== names.join()
      )
        problems.push(`/run/extensions holds ${runtime.join(", ")}`);
      return problems;
    },
    // The next trial boots afresh, as after a reboot (/run is a tmpfs on a node).
    reset: async () => {
      for (const entry of await readdir(path.join(root, "run")))
        await rm(path.join(root, "run", entry), { recursive: true, force: true });
    },
  });
  report(t, "boot", outcome);
});

test("a build sweeps only dead builds' temps: two builds into one output dir both finish", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs"])) return;
  const dir = await tempDir(t);
  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "usr/lib/pair"), { recursive: true });
  for (let i = 0; i < 8; i++)
    await writeFile(path.join(tree, "usr/lib/pair", `r${i}.bin`), randomBytes(1 << 20));
  const out = path.join(dir, "out");
  await mkdir(out);
  // A dead build's leftovers, under a pid that cannot be alive (above the kernel's pid_max).
  await writeFile(path.join(out, ".extctl-fs-99999999-00000000-gone.sysext.raw"), "partial");
  const first = extctl(["build", "sysext", "first", tree, "-o", out, "--compress", "lz4hc"]);
  // The second starts (and sweeps) while the first is staging or running mkfs.erofs.
  await new Promise((r) => setTimeout(r, 400));
  const second = await extctl(["build", "sysext", "second", tree, "-o", out, "--compress", "lz4"]);
  const done = await first;
  assert.equal(second.code, 0, second.stderr);
  assert.equal(done.code, 0, `the first build lost its temp files: ${done.stderr}`);
  assert.deepEqual((await readdir(out)).sort(), ["first.sysext.raw", "second.sysext.raw"]);
});
