// Every erofs and squashfs variant the mkfs tools on PATH offer (compressors, tail packing,
// fragments, dedupe, pcluster sizes, -no-fragments), read by extctl: `inspect --files --json`
// equals find(1) of the source tree, `inspect --cat` gives every file's bytes (sha256), and
// `check` reads a release file that sits in a fragment or tail. Options are detected at run time,
// so the same test covers erofs-utils 1.5 here and 1.8/1.9 in the lanes. Tool roots made with
// mmdebstrap at /var/tmp/tools-{trixie,forky} are used too when they exist (never required).
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { link, mkdir, mkdtemp, open, readFile, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { Writable } from "node:stream";
import type { InspectResult } from "../../src/operations/inspect.js";
import { catImageFile } from "../../src/operations/cat.js";
import { createContext } from "../../src/util/context.js";
import { MemoryLogger } from "../../src/util/log.js";
import { EXTCTL_BIN, runExtctl } from "../helpers/cli.js";
import { hasCommand, requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

/** Where mkfs runs: the host's PATH, or chroot into a tool root (paths then live inside it). */
interface Toolset {
  name: string;
  root?: string;
}

const TOOL_ROOTS = ["trixie", "forky"].map((s) => `/var/tmp/tools-${s}`);

function toolsets(): Toolset[] {
  const sets: Toolset[] = [{ name: "host" }];
  for (const root of TOOL_ROOTS)
    if (existsSync(path.join(root, "usr/bin/mkfs.erofs")) && hasCommand("chroot"))
      sets.push({ name: path.basename(root), root });
  return sets;
}

function tool(ts: Toolset, cmd: string, args: string[]): { status: number | null; out: string } {
  const r = ts.root
    ? spawnSync("chroot", [ts.root, cmd, ...args], { encoding: "utf8" })
    : spawnSync(cmd, args, { encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A work directory visible to the toolset: `host` is our path, `inner` the tool's. */
async function workDir(t: TestContext, ts: Toolset): Promise<{ host: string; inner: string }> {
  if (!ts.root) {
    const dir = await tempDir(t, "extctl-variants-");
    return { host: dir, inner: dir };
  }
  const host = await mkdtemp(path.join(ts.root, "tmp/extctl-variants-"));
  t.after(() => rm(host, { recursive: true, force: true }));
  return { host, inner: `/tmp/${path.basename(host)}` };
}

const RELEASE = "usr/lib/extension-release.d/extension-release.fixture";
const SIZES = [0, 1, 4095, 4096, 4097, 65537];

/** The source tree: the sizes around a block, multi-MiB files, links, deep dirs, a release file. */
async function makeSourceTree(dir: string): Promise<void> {
  const p = (rel: string) => path.join(dir, rel);
  for (const d of ["usr/bin", "usr/lib/extension-release.d", "usr/share/sizes", "opt/empty"])
    await mkdir(p(d), { recursive: true });
  const deep = Array.from({ length: 16 }, (_, i) => `d${i}`).join("/");
  await mkdir(p(`usr/share/${deep}`), { recursive: true });
  await writeFile(p(`usr/share/${deep}/bottom`), "deep\n");
  await writeFile(p(RELEASE), "ID=_any\nSYSEXT_SCOPE=system\n");
  for (const n of SIZES) {
    await writeFile(p(`usr/share/sizes/random-${n}`), randomBytes(n));
    await writeFile(p(`usr/share/sizes/text-${n}`), Buffer.alloc(n, "text block\n"));
  }
  await writeFile(p("usr/share/random.bin"), randomBytes(3 * 1024 * 1024 + 12345));
  const text = Buffer.from(
    Array.from({ length: 120_000 }, (_, i) => `line ${i % 977} of compressible text\n`).join(""),
  );
  await writeFile(p("usr/share/text.txt"), text);
  // The same bytes twice, for -E dedupe.
  await writeFile(p("usr/share/copy-a"), text.subarray(0, 300_000));
  await writeFile(p("usr/share/copy-b"), text.subarray(0, 300_000));
  // Sparse-ish: mostly zeros with islands of data.
  const sparse = await open(p("usr/share/sparse.img"), "w");
  await sparse.truncate(5 * 1024 * 1024);
  await sparse.write(Buffer.from("island one"), 0, 10, 2 * 1024 * 1024 + 7);
  await sparse.write(randomBytes(5000), 0, 5000, 4 * 1024 * 1024 - 100);
  await sparse.close();
  await writeFile(p("usr/bin/tool"), "#!/bin/sh\necho tool\n", { mode: 0o755 });
  await link(p("usr/bin/tool"), p("usr/bin/tool-hardlink"));
  await symlink("tool", p("usr/bin/tool-link"));
  await symlink("/usr/share/text.txt", p("usr/bin/abs-link"));
  await symlink("../../../../../../etc/passwd", p("usr/bin/escaping-link"));
  await symlink("nowhere", p("usr/bin/dangling-link"));
}

interface SourceEntry {
  path: string;
  type: string;
  size: number;
  target?: string;
}

/** find(1) of the tree: every path with its type, size (files, links) and link target. */
function findTree(tree: string): SourceEntry[] {
  const out = spawnSync("find", [tree, "-printf", "%P\\t%y\\t%s\\t%l\\n"], { encoding: "utf8" });
  assert.equal(out.status, 0, out.stderr);
  const types: Record<string, string> = { f: "file", d: "dir", l: "symlink" };
  return out.stdout
    .split("\n")
    .filter((l) => l !== "")
    .map((line) => {
      const [rel, y, size, target] = line.split("\t") as [string, string, string, string];
      const type = types[y] ?? y;
      return {
        path: `/${rel}`.replace(/^\/$/, "/"),
        type,
        size: type === "dir" ? 0 : Number(size),
        ...(type === "symlink" ? { target } : {}),
      };
    })
    .sort((a, b) => a.path.localeCompare(b.path));
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Runs `extctl inspect IMAGE --cat PATH`, hashing stdout as it streams. */
function catHash(
  image: string,
  inner: string,
): Promise<{ code: number; hash: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [EXTCTL_BIN, "inspect", image, "--cat", inner], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    const h = createHash("sha256");
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => h.update(b));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 128, hash: h.digest("hex"), stderr }));
  });
}

/** A Writable that hashes what is written, as a pipe to sha256sum would. */
class HashSink extends Writable {
  private readonly h = createHash("sha256");
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void): void {
    this.h.update(chunk);
    done();
  }
  hex(): string {
    return this.h.digest("hex");
  }
}

/** The checks every image gets. `extra` adds the --cat error cases (once per filesystem). */
async function checkImage(
  t: TestContext,
  image: string,
  tree: string,
  want: SourceEntry[],
  extra: boolean,
): Promise<void> {
  const inspected = await runExtctl(["inspect", "--files", "--json", image]);
  assert.equal(inspected.code, 0, inspected.stderr);
  const r = JSON.parse(inspected.stdout) as InspectResult;
  const got = (r.files ?? [])
    .map((f) => ({
      path: f.path,
      type: f.type,
      size: f.type === "dir" ? 0 : f.size,
      // --json prints an unknown key as null (issue 29): a symlink alone has a target.
      ...(typeof f.target === "string" ? { target: f.target } : {}),
    }))
    .sort((a, b) => a.path.localeCompare(b.path));
  assert.deepEqual(got, want);

  // Every regular file through the --cat operation in this process (a CLI spawn per file
  // would take most of the run); the CLI itself for the biggest file and the error cases.
  const ctx = createContext({ log: new MemoryLogger() });
  const files = want.filter((e) => e.type === "file");
  for (const f of files) {
    const sink = new HashSink();
    const result = await catImageFile(ctx, { image, path: f.path, out: sink });
    assert.equal(result.bytesWritten, f.size, f.path);
    assert.equal(sink.hex(), sha256(await readFile(path.join(tree, f.path))), `bytes of ${f.path}`);
  }
  const big = await catHash(image, "/usr/share/random.bin");
  assert.equal(big.code, 0, big.stderr);
  assert.equal(big.hash, sha256(await readFile(path.join(tree, "usr/share/random.bin"))));

  // The release file is tiny: in a squashfs fragment, an erofs tail or the packed inode.
  const root = await tempRoot(t);
  const checked = await runExtctl(["--root", root, "check", "--systemd", "257", image]);
  assert.equal(checked.code, 0, checked.stdout + checked.stderr);
  assert.match(checked.stdout, /^MERGES/);

  if (!extra) return;
  const link = await catHash(image, "/usr/bin/abs-link");
  assert.equal(link.code, 0, link.stderr);
  assert.equal(link.hash, sha256(await readFile(path.join(tree, "usr/share/text.txt"))));
  for (const [inner, code, message] of [
    ["/usr/share", 2, /is a directory in the image/],
    ["/usr/share/missing", 1, /does not exist in the image/],
    ["/usr/bin/dangling-link", 1, /symbolic link to "nowhere", which does not exist/],
    // Resolved inside the image: ".." stops at its root, so /etc/passwd of the host is never read.
    ["/usr/bin/escaping-link", 1, /which does not exist in the image/],
  ] as const) {
    const c = await catHash(image, inner);
    assert.equal(c.code, code, `${inner}: ${c.stderr}`);
    assert.match(c.stderr, message);
    assert.equal(c.hash, sha256(Buffer.alloc(0)), `${inner} wrote nothing`);
  }
}

interface Variant {
  name: string;
  args: string[];
}

/** What this mkfs.erofs offers: compressors from --help, -E options by trying them. */
function erofsVariants(ts: Toolset, probeInner: string): Variant[] {
  const help = tool(ts, "mkfs.erofs", ["--help"]).out;
  const comps = ["lz4", "lz4hc", "lzma", "deflate", "zstd"].filter((c) =>
    new RegExp(`(^|[\\s,:])${c}($|[\\s,:])`, "m").test(help),
  );
  const strong = comps.includes("lz4hc") ? "lz4hc" : (comps[0] ?? "lz4");
  const candidates: Variant[] = [
    { name: "plain", args: [] },
    { name: "chunked", args: ["--chunksize=8192"] },
    ...comps.map((c) => ({ name: c, args: [`-z${c}`] })),
    { name: `${strong}-small-pcluster`, args: [`-z${strong}`, "-C4096"] },
    { name: `${strong}-big-pcluster`, args: [`-z${strong}`, "-C262144"] },
    { name: `${strong}-legacy-index`, args: [`-z${strong}`, "-Elegacy-compress"] },
    ...["ztailpacking", "fragments", "all-fragments", "dedupe"].map((e) => ({
      name: `${strong}-${e}`,
      args: [`-z${strong}`, `-E${e}`],
    })),
    ...comps
      .filter((c) => !c.startsWith("lz4"))
      .map((c) => ({
        name: `${c}-tail-fragments-dedupe`,
        args: [`-z${c}`, "-C65536", "-Eztailpacking,fragments,dedupe"],
      })),
  ];
  // Trying a variant on a tiny tree tells whether this mkfs.erofs knows its options.
  return candidates.filter(
    (v) =>
      tool(ts, "mkfs.erofs", [...v.args, `${probeInner}/probe.img`, `${probeInner}/probe`])
        .status === 0,
  );
}

function squashfsVariants(ts: Toolset, probeInner: string): Variant[] {
  const candidates: Variant[] = [
    ...["gzip", "lzma", "lzo", "xz", "lz4", "zstd"].map((c) => ({ name: c, args: ["-comp", c] })),
    { name: "gzip-no-fragments", args: ["-comp", "gzip", "-no-fragments"] },
    { name: "zstd-no-fragments", args: ["-comp", "zstd", "-no-fragments"] },
    { name: "xz-4k-blocks", args: ["-comp", "xz", "-b", "4096"] },
    { name: "lz4-always-fragments", args: ["-comp", "lz4", "-always-use-fragments"] },
  ];
  const quiet = ["-noappend", "-quiet", "-no-progress"];
  return candidates.filter(
    (v) =>
      tool(ts, "mksquashfs", [
        `${probeInner}/probe`,
        `${probeInner}/probe.sqfs`,
        ...quiet,
        ...v.args,
      ]).status === 0,
  );
}

async function runVariants(t: TestContext, fsType: "erofs" | "squashfs"): Promise<void> {
  let extraDone = false;
  for (const ts of toolsets()) {
    const work = await workDir(t, ts);
    const tree = path.join(work.host, "tree");
    await makeSourceTree(tree);
    const want = findTree(tree);
    await mkdir(path.join(work.host, "probe"));
    await writeFile(path.join(work.host, "probe/f"), "probe\n");
    const variants =
      fsType === "erofs" ? erofsVariants(ts, work.inner) : squashfsVariants(ts, work.inner);
    const version =
      fsType === "erofs"
        ? // 1.8+ answer --version; 1.5 prints its version when it makes an image.
          (tool(ts, "mkfs.erofs", ["--version"]).out.match(/erofs-utils\) (\d[\d.]*)/)?.[1] ??
          tool(ts, "mkfs.erofs", [`${work.inner}/probe.img`, `${work.inner}/probe`]).out.match(
            /mkfs\.erofs (\d[\d.]*)/,
          )?.[1])
        : tool(ts, "mksquashfs", ["-version"]).out.match(/version (\S+)/)?.[1];
    t.diagnostic(
      `${ts.name} ${fsType} ${version ?? "?"}: ${variants.map((v) => v.name).join(" ")}`,
    );
    assert.ok(variants.length >= 4, `${ts.name}: only ${variants.length} variants offered`);
    for (const v of variants) {
      await t.test(`${ts.name} ${fsType} ${version ?? ""} ${v.name}`, async (st) => {
        const dir = path.join(work.host, v.name);
        await mkdir(dir);
        const innerImage = `${work.inner}/${v.name}/fixture.raw`;
        const made =
          fsType === "erofs"
            ? tool(ts, "mkfs.erofs", ["--quiet", ...v.args, innerImage, `${work.inner}/tree`])
            : tool(ts, "mksquashfs", [
                `${work.inner}/tree`,
                innerImage,
                "-noappend",
                "-quiet",
                "-no-progress",
                ...v.args,
              ]);
        assert.equal(made.status, 0, made.out);
        await checkImage(st, path.join(dir, "fixture.raw"), tree, want, !extraDone);
        extraDone = true;
      });
    }
  }
}

test("erofs variants: inspect --files equals find, --cat equals every source file, check reads the release file", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs", "find"], { root: true })) return;
  await runVariants(t, "erofs");
});

test("squashfs variants: inspect --files equals find, --cat equals every source file, check reads the release file", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "find"], { root: true })) return;
  await runVariants(t, "squashfs");
});

test("inspect --cat reads a file out of a DDI's data partition", async (t) => {
  if (!requirePeers(t, ["mkfs.erofs", "find"], { root: true })) return;
  const dir = await tempDir(t);
  const tree = path.join(dir, "tree");
  await makeSourceTree(tree);
  // extctl build refuses a link that leaves the tree (readers only need to survive one).
  await rm(path.join(tree, "usr/bin/escaping-link"));
  const built = await runExtctl([
    "build",
    "sysext",
    "fixture",
    tree,
    "--output",
    dir,
    "--format",
    "erofs",
    "--json",
  ]);
  assert.equal(built.code, 0, built.stderr);
  const image = path.join(dir, "fixture.sysext.raw");
  for (const inner of ["/usr/share/random.bin", "/usr/share/sizes/text-4097", "/usr/bin/tool"]) {
    const c = await catHash(image, inner);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.hash, sha256(await readFile(path.join(tree, inner))), inner);
  }
  const missing = await catHash(image, "/usr/nothing");
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /does not exist in the image/);
});
