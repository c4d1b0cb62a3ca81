// dist/extctl, the one-file build (`npm run package`), run where there is no Node.js at all: a
// root that holds only that file and the shared libraries it links, entered with chroot. It must
// print the same --help as bin/extctl.cjs and read real squashfs images (zstd and xz blocks, made
// by mksquashfs) and a verity DDI the same way; and it takes no code or options from Node's
// environment variables and carries no test hook.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runExtctl } from "../helpers/cli.js";
import { requirePeers, run } from "../helpers/peers.js";
import { makeSigningCert } from "../helpers/keys.js";
import { tempDir } from "../helpers/tmp.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const PACKAGED = path.join(REPO, "dist/extctl");

/**
 * dist/extctl as scripts/test.sh leaves it (`npm run package` on the host, before the lanes run,
 * which then test the host's build on their own systemd and libraries).
 */
function requirePackaged(t: TestContext): boolean {
  if (existsSync(PACKAGED)) return true;
  const message = "dist/extctl is missing: run `npm run package` first (scripts/test.sh does)";
  if (process.env.CI === "true") throw new Error(message);
  t.skip(message);
  return false;
}

/** The libraries `ldd` names for a program (the dynamic loader among them). */
function sharedLibraries(program: string): string[] {
  const out = run("ldd", [program]);
  const libs: string[] = [];
  for (const line of out.split("\n")) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/** A root holding /usr/bin/extctl and the libraries it links: nothing else, no node. */
async function bareRoot(t: TestContext): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), "extctl-bare-root-"));
  await mkdir(path.join(root, "usr/bin"), { recursive: true });
  await copyFile(PACKAGED, path.join(root, "usr/bin/extctl"));
  await chmod(path.join(root, "usr/bin/extctl"), 0o755);
  for (const lib of sharedLibraries(PACKAGED)) {
    const inRoot = path.join(root, lib);
    await mkdir(path.dirname(inRoot), { recursive: true });
    await copyFile(lib, inRoot);
  }
  // No /proc and no /dev either: extctl reading images needs neither, and nothing of the host's
  // is mounted into a directory the test deletes afterwards.
  for (const dir of ["tmp", "images"]) await mkdir(path.join(root, dir));
  t.after(() => rm(root, { recursive: true, force: true }));
  return root;
}

/** Every regular file under the root, relative to it. */
async function regularFiles(root: string, dir = ""): Promise<string[]> {
  const files: string[] = [];
  for (const e of await readdir(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) files.push(...(await regularFiles(root, rel)));
    else if (e.isFile()) files.push(rel);
  }
  return files;
}

/** Runs the packaged extctl inside the bare root with an empty environment but PATH. */
function inRoot(root: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync("chroot", [root, "/usr/bin/extctl", ...args], {
    encoding: "utf8",
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", NO_COLOR: "1" },
    maxBuffer: 64 << 20,
  });
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}

test("dist/extctl runs in a root without Node.js: --version, --help, inspect and --cat of squashfs zstd/xz images, verify --full of a DDI", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "chroot", "ldd"], { root: true })) return;
  if (!requirePackaged(t)) return;
  const root = await bareRoot(t);
  for (const file of await regularFiles(root))
    assert.ok(
      file === "usr/bin/extctl" || /\.so(\.[\d.]+)?$/.test(file),
      `${file}: the root holds extctl and its shared libraries only, no node`,
    );
  const pkg = JSON.parse(await readFile(path.join(REPO, "package.json"), "utf8")) as {
    version: string;
  };

  const runtime = JSON.parse(
    await readFile(path.join(REPO, "scripts/node-runtime.json"), "utf8"),
  ) as { version: string };
  const version = inRoot(root, ["--version"]);
  assert.equal(version.code, 0, version.stderr);
  assert.equal(
    version.stdout,
    `extctl ${pkg.version} (Node.js v${runtime.version}, linux-amd64)\n`,
    "the pinned runtime (scripts/node-runtime.json)",
  );
  assert.equal(
    (await runExtctl(["--version"])).stdout,
    `extctl ${pkg.version} (Node.js ${process.version}, linux-amd64)\n`,
    "bin/extctl.cjs names the node it runs on",
  );
  for (const args of [
    ["--help"],
    ["sysext", "--help"],
    ["systemd", "install", "--help"],
    ["no-such-command"],
  ]) {
    const packaged = inRoot(root, args);
    const script = await runExtctl(args);
    assert.equal(packaged.stdout, script.stdout, `${args.join(" ")}: the same output`);
    assert.equal(packaged.stderr, script.stderr, `${args.join(" ")}: the same errors`);
    assert.equal(packaged.code, script.code, `${args.join(" ")}: the same exit code`);
  }

  // Real squashfs images with zstd and xz blocks: a file bigger than one block, and a small one.
  const work = await tempDir(t);
  const tree = path.join(work, "tree");
  await mkdir(path.join(tree, "usr/share/demo"), { recursive: true });
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.demo"),
    "ID=_any\n",
  );
  const big = Buffer.concat([
    await readFile(PACKAGED).then((b) => b.subarray(0, 3 << 20)),
    Buffer.from("end\n"),
  ]);
  await writeFile(path.join(tree, "usr/share/demo/big.bin"), big);
  await writeFile(path.join(tree, "usr/share/demo/hello"), "hello from a single file\n");
  for (const comp of ["zstd", "xz"]) {
    const image = path.join(root, "images", `demo-${comp}.raw`);
    run("mksquashfs", [
      tree,
      image,
      "-noappend",
      "-all-root",
      "-quiet",
      "-no-progress",
      "-comp",
      comp,
    ]);
    const packaged = inRoot(root, ["inspect", "--json", `/images/demo-${comp}.raw`]);
    assert.equal(packaged.code, 0, packaged.stderr);
    const script = await runExtctl(["inspect", "--json", image]);
    assert.equal(script.code, 0, script.stderr);
    assert.equal(
      packaged.stdout.replaceAll(`/images/demo-${comp}.raw`, "IMAGE"),
      script.stdout.replaceAll(image, "IMAGE"),
      `${comp}: inspect says the same`,
    );
    assert.match(packaged.stdout, new RegExp(`"${comp}"`), `${comp}: the compression is named`);
    const cat = spawnSync(
      "chroot",
      [
        root,
        "/usr/bin/extctl",
        "inspect",
        "--cat",
        "/usr/share/demo/big.bin",
        `/images/demo-${comp}.raw`,
      ],
      { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }, maxBuffer: 64 << 20 },
    );
    assert.equal(cat.status, 0, cat.stderr.toString());
    assert.ok(cat.stdout.equals(big), `${comp}: the file's bytes come back exactly`);
  }

  // A verity DDI built by extctl (mksquashfs, zstd) on the host; the packaged one checks every block.
  const out = path.join(work, "out");
  await mkdir(out);
  const built = await runExtctl([
    "build",
    "sysext",
    "demo",
    tree,
    "-o",
    out,
    "--format",
    "squashfs",
    "--compress",
    "zstd",
  ]);
  assert.equal(built.code, 0, built.stderr);
  await copyFile(path.join(out, "demo.sysext.raw"), path.join(root, "images/demo.sysext.raw"));
  const packaged = inRoot(root, ["verify", "--full", "/images/demo.sysext.raw"]);
  const script = await runExtctl(["verify", "--full", path.join(out, "demo.sysext.raw")]);
  assert.equal(packaged.code, script.code, packaged.stderr);
  assert.equal(
    packaged.stdout.replaceAll("/images/demo.sysext.raw", "IMAGE"),
    script.stdout.replaceAll(path.join(out, "demo.sysext.raw"), "IMAGE"),
  );
  assert.match(packaged.stdout, /data checked: every block/);
});

// The npm packages are assets of their own in dist/extctl, compiled when a command first needs
// one (scripts/sea-loader.cjs): each must load from inside the program, with no node_modules.
test("dist/extctl loads the npm packages it carries when a command needs them: pkijs and asn1js (inspect of a signed image), yaml (apply), undici (an OCI install)", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "openssl", "chroot", "ldd"], { root: true })) return;
  if (!requirePackaged(t)) return;
  const root = await bareRoot(t);
  const work = await tempDir(t);
  const tree = path.join(work, "tree");
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.sig"),
    "ID=_any\n",
  );
  const signer = makeSigningCert(work, "asset-signer");
  const built = await runExtctl([
    "build",
    "sysext",
    "sig",
    tree,
    "-o",
    path.join(root, "images"),
    "--format",
    "squashfs",
    "--private-key",
    signer.key,
    "--certificate",
    signer.cert,
  ]);
  assert.equal(built.code, 0, built.stderr);
  await copyFile(signer.cert, path.join(root, "images/signer.crt"));

  // inspect describes the embedded signature with pkijs; the script build says the same.
  const packaged = inRoot(root, ["inspect", "--json", "/images/sig.sysext.raw"]);
  assert.equal(packaged.code, 0, packaged.stderr);
  const script = await runExtctl(["inspect", "--json", path.join(root, "images/sig.sysext.raw")]);
  assert.equal(
    packaged.stdout.replaceAll("/images/", "DIR/"),
    script.stdout.replaceAll(path.join(root, "images/"), "DIR/"),
  );
  assert.match(packaged.stdout, /CN=asset-signer/);
  const trusted = inRoot(root, [
    "verify",
    "--trust",
    "/images/signer.crt",
    "/images/sig.sysext.raw",
  ]);
  assert.equal(trusted.code, 0, trusted.stderr);

  // apply parses its file with yaml: the error names the file's line, so the YAML was read.
  await writeFile(path.join(root, "images/apply.yaml"), "sysext:\n  - name: tool\n");
  await mkdir(path.join(root, "node"));
  const applied = inRoot(root, ["--root", "/node", "apply", "/images/apply.yaml"]);
  assert.equal(applied.code, 1, applied.stderr);
  assert.match(applied.stderr, /apply\.yaml:2: sysext\[0\]: no extension catalog is configured/);

  // An OCI install talks to the registry with undici: port 1 refuses at once, and the error is
  // the connection's, not a module that could not be found.
  const pulled = inRoot(root, [
    "--root",
    "/node",
    "sysext",
    "install",
    "oci://127.0.0.1:1/tool:1",
    "--insecure-registry",
    "127.0.0.1:1",
  ]);
  // 75 (EX_TEMPFAIL): a registry that cannot be reached is "try later", not a failed install.
  assert.equal(pulled.code, 75, pulled.stderr);
  assert.match(pulled.stderr, /127\.0\.0\.1:1/);
  assert.match(pulled.stderr, /ECONNREFUSED|refused/i);
  assert.doesNotMatch(pulled.stderr, /Cannot find module|internal error/);
});

// Whoever sets the environment of a root command must not be able to make the shipped program run
// their code or change how Node behaves: NODE_OPTIONS (--require, --import, --inspect), the
// variables Node reads at start-up, OPENSSL_CONF (a provider module is native code), and the
// test suite's hook (NODE_ENV=test with EXTCTL_TEST_AFTER_WALK), which the one file does not carry.
test("dist/extctl ignores NODE_OPTIONS and Node's other variables, and has no test hook", async (t) => {
  if (!requirePeers(t, ["mksquashfs"], { root: true })) return;
  if (!requirePackaged(t)) return;
  const work = await tempDir(t);
  const marker = path.join(work, "ran");
  const inject = path.join(work, "inject.cjs");
  await writeFile(inject, `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "x");\n`);
  const injectEsm = path.join(work, "inject.mjs");
  await writeFile(
    injectEsm,
    `import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(marker)}, "x");\n`,
  );
  const coverage = path.join(work, "coverage");
  await mkdir(coverage);
  const sslConf = path.join(work, "openssl.cnf");
  // Loading this provider fails (there is no such module), which aborts a node that reads it.
  await writeFile(
    sslConf,
    `nodejs_conf = c\n[c]\nproviders = p\n[p]\nx = x\n[x]\nmodule = ${work}/no-such-provider.so\nactivate = 1\n`,
  );
  const expected = spawnSync(PACKAGED, ["--root", work, "status"], {
    encoding: "utf8",
    env: { PATH: process.env.PATH },
  });
  assert.equal(expected.status, 0, expected.stderr);
  const hostile: NodeJS.ProcessEnv[] = [
    { NODE_OPTIONS: `--require ${inject}` },
    { NODE_OPTIONS: `--import ${injectEsm}` },
    { NODE_OPTIONS: "--inspect=127.0.0.1:0" },
    { NODE_OPTIONS: "--inspect-brk=127.0.0.1:0" },
    { NODE_OPTIONS: "--print 1" },
    { NODE_V8_COVERAGE: coverage, NODE_DEBUG: "fs,net", NODE_DEBUG_NATIVE: "SEA" },
    { NODE_PATH: work, NODE_PENDING_DEPRECATION: "1", NODE_REDIRECT_WARNINGS: marker },
    { OPENSSL_CONF: sslConf },
    { NODE_COMPILE_CACHE: coverage },
  ];
  for (const env of hostile) {
    const r = spawnSync(PACKAGED, ["--root", work, "status"], {
      encoding: "utf8",
      env: { PATH: process.env.PATH, ...env },
      timeout: 30_000,
    });
    const what = JSON.stringify(env);
    assert.equal(r.status, 0, `${what}: ${r.stderr}`);
    assert.equal(r.stdout, expected.stdout, `${what}: the same output`);
    assert.doesNotMatch(
      r.stderr,
      /Debugger|NODE_|FS \d|NET \d/,
      `${what}: no debugger, no debug output`,
    );
    assert.ok(!existsSync(marker), `${what}: no code from the environment ran`);
    // NODE_COMPILE_CACHE: node makes its version's directory at start-up, before any code of
    // the program runs; nothing is written into it.
    assert.deepEqual(await regularFiles(coverage), [], `${what}: no file written to its directory`);
  }

  // The build-race hook: a test build runs EXTCTL_TEST_AFTER_WALK under NODE_ENV=test; the one
  // file builds the same image and runs nothing, and its bytes do not even name the variable.
  const tree = path.join(work, "tree");
  await mkdir(path.join(tree, "usr/lib/extension-release.d"), { recursive: true });
  await writeFile(
    path.join(tree, "usr/lib/extension-release.d/extension-release.hook"),
    "ID=_any\n",
  );
  const out = path.join(work, "out");
  await mkdir(out);
  const built = spawnSync(
    PACKAGED,
    ["build", "sysext", "hook", tree, "-o", out, "--format", "squashfs"],
    {
      encoding: "utf8",
      env: { PATH: process.env.PATH, NODE_ENV: "test", EXTCTL_TEST_AFTER_WALK: `touch ${marker}` },
    },
  );
  assert.equal(built.status, 0, built.stderr);
  assert.ok(!existsSync(marker), "the test hook did not run");
  assert.equal((await readFile(PACKAGED)).indexOf("EXTCTL_TEST_AFTER_WALK"), -1);
});
