// dist/extctl-linux-arm64, the arm64 one file (`npm run package -- --arch arm64`), run on this
// x86-64 machine under qemu-user with an arm64 sysroot (scripts/arm64-sysroot.sh): it must say
// which runtime it is, read real squashfs (zstd, xz) and erofs (lz4) images as the x86-64 build
// does, check every block of a signed DDI, and build a signed DDI that the x86-64 verify accepts.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runExtctl } from "../helpers/cli.js";
import { makeSigningCert } from "../helpers/keys.js";
import { requirePeers, run } from "../helpers/peers.js";
import { tempDir } from "../helpers/tmp.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const ARM64 = path.join(REPO, "dist/extctl-linux-arm64");
const SYSROOT = path.join(
  process.env.EXTCTL_LANES_CACHE ?? "/var/cache/extctl-lanes",
  "arm64-sysroot/root",
);

/** The arm64 file and its sysroot as scripts/test.sh leaves them; skips (fails under CI) without. */
function requireArm64(t: TestContext): boolean {
  // qemu-user and the sysroot are the build machine's: the lanes (their own roots) run the x86-64
  // file; the arm64 one is proven on the host only.
  if (process.env.EXTCTL_LANE) {
    t.skip("the arm64 file is run under qemu-user on the host only");
    return false;
  }
  const missing = [
    existsSync(ARM64) ? "" : "dist/extctl-linux-arm64 (npm run package -- --arch arm64)",
    existsSync(path.join(SYSROOT, "lib/ld-linux-aarch64.so.1"))
      ? ""
      : `the arm64 sysroot ${SYSROOT} (bash scripts/arm64-sysroot.sh)`,
  ].filter(Boolean);
  if (missing.length === 0) return true;
  const message = `missing: ${missing.join(", ")}`;
  if (process.env.CI === "true") throw new Error(message);
  t.skip(message);
  return false;
}

/** Runs the arm64 extctl under qemu-user, with an environment of PATH only. */
function arm64(args: string[]): { code: number; stdout: Buffer; stderr: string } {
  const r = spawnSync("qemu-aarch64-static", ["-L", SYSROOT, ARM64, ...args], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", NO_COLOR: "1" },
    maxBuffer: 64 << 20,
    timeout: 300_000,
  });
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** A tree with a release file, a file of several blocks (part of the arm64 file) and a small one. */
async function demoTree(work: string): Promise<{ tree: string; big: Buffer }> {
  const tree = path.join(work, "tree");
  await mkdir(path.join(tree, "usr/share/demo"), { recursive: true });
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.demo"),
    "ID=_any\n",
  );
  const big = Buffer.concat([(await readFile(ARM64)).subarray(0, 3 << 20), Buffer.from("end\n")]);
  await writeFile(path.join(tree, "usr/share/demo/big.bin"), big);
  await writeFile(path.join(tree, "usr/share/demo/hello"), "hello from arm64\n");
  return { tree, big };
}

test("dist/extctl-linux-arm64 under qemu-user: --version names Node.js and linux-arm64", async (t) => {
  if (!requireArm64(t)) return;
  if (!requirePeers(t, ["qemu-aarch64-static"])) return;
  const pkg = JSON.parse(await readFile(path.join(REPO, "package.json"), "utf8")) as {
    version: string;
  };
  const runtime = JSON.parse(
    await readFile(path.join(REPO, "scripts/node-runtime.json"), "utf8"),
  ) as { version: string };
  const r = arm64(["--version"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout.toString(),
    `extctl ${pkg.version} (Node.js v${runtime.version}, linux-arm64)\n`,
  );
  // The file is an arm64 ELF, not this machine's.
  assert.match(run("file", ["-b", ARM64]), /ARM aarch64/);
});

test("dist/extctl-linux-arm64 under qemu-user reads squashfs (zstd, xz) and erofs (lz4) images as the x86-64 build does", async (t) => {
  if (!requireArm64(t)) return;
  if (!requirePeers(t, ["qemu-aarch64-static", "mksquashfs", "mkfs.erofs"])) return;
  const work = await tempDir(t);
  const { tree, big } = await demoTree(work);
  const images: Array<[string, string, string[]]> = [
    [
      "squashfs-zstd",
      "mksquashfs",
      ["-noappend", "-all-root", "-quiet", "-no-progress", "-comp", "zstd"],
    ],
    [
      "squashfs-xz",
      "mksquashfs",
      ["-noappend", "-all-root", "-quiet", "-no-progress", "-comp", "xz"],
    ],
    ["erofs-lz4", "mkfs.erofs", ["-zlz4hc", "--all-root", "--quiet"]],
  ];
  for (const [name, tool, options] of images) {
    const image = path.join(work, `${name}.raw`);
    if (tool === "mksquashfs") run(tool, [tree, image, ...options]);
    else run(tool, [...options, image, tree]);
    const packaged = arm64(["inspect", "--json", image]);
    assert.equal(packaged.code, 0, `${name}: ${packaged.stderr}`);
    const script = await runExtctl(["inspect", "--json", image]);
    assert.equal(script.code, 0, script.stderr);
    // The same but for the host's architecture, which proves where each ran.
    const fromArm64 = JSON.parse(packaged.stdout.toString()) as { hostArchitecture?: string };
    const fromHost = JSON.parse(script.stdout) as { hostArchitecture?: string };
    assert.equal(fromArm64.hostArchitecture, "arm64");
    assert.equal(fromHost.hostArchitecture, "x86-64");
    assert.deepEqual(
      { ...fromArm64, hostArchitecture: "HOST" },
      { ...fromHost, hostArchitecture: "HOST" },
      `${name}: inspect says the same`,
    );
    assert.match(script.stdout, /"(zstd|xz|lz4|lz4hc)"/, `${name}: the compression is named`);
    const cat = arm64(["inspect", "--cat", "/usr/share/demo/big.bin", image]);
    assert.equal(cat.code, 0, `${name}: ${cat.stderr}`);
    assert.ok(cat.stdout.equals(big), `${name}: the file's bytes come back exactly`);
  }
});

test("dist/extctl-linux-arm64 under qemu-user: verify --full of a signed DDI, and a signed DDI it builds passes the x86-64 verify --full", async (t) => {
  if (!requireArm64(t)) return;
  if (!requirePeers(t, ["qemu-aarch64-static", "mksquashfs", "openssl"])) return;
  const work = await tempDir(t);
  const { tree } = await demoTree(work);
  const signer = makeSigningCert(work, "arm64-signer");

  // Built by the x86-64 extctl for arm64 (a DDI's partitions name their architecture, and a node
  // mounts only its own: verify calls a foreign one ambiguous), checked block by block by the
  // arm64 one.
  const x86 = path.join(work, "x86");
  await mkdir(x86);
  const built = await runExtctl([
    "build",
    "sysext",
    "demo",
    tree,
    "-o",
    x86,
    "--format",
    "squashfs",
    "--compress",
    "zstd",
    "--private-key",
    signer.key,
    "--certificate",
    signer.cert,
    "--arch",
    "arm64",
  ]);
  assert.equal(built.code, 0, built.stderr);
  const image = path.join(x86, "demo.sysext.raw");
  const verified = arm64(["verify", "--full", "--trust", signer.cert, image]);
  assert.equal(verified.code, 0, verified.stderr);
  assert.match(verified.stdout.toString(), /data checked: every block/);

  // Built by the arm64 extctl for x86-64, accepted by the x86-64 one.
  const a64 = path.join(work, "arm64");
  await mkdir(a64);
  const made = arm64([
    "build",
    "sysext",
    "demo",
    tree,
    "-o",
    a64,
    "--format",
    "squashfs",
    "--compress",
    "zstd",
    "--private-key",
    signer.key,
    "--certificate",
    signer.cert,
    "--arch",
    "amd64",
  ]);
  assert.equal(made.code, 0, made.stderr);
  const accepted = await runExtctl([
    "verify",
    "--full",
    "--trust",
    signer.cert,
    path.join(a64, "demo.sysext.raw"),
  ]);
  assert.equal(accepted.code, 0, accepted.stderr);
  assert.match(accepted.stdout, /data checked: every block/);
});
