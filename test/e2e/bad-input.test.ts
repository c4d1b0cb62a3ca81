// Bad input from spec/kairos.md's list: a read-only filesystem, a file where a directory should
// be, invalid URIs. Each gives one clear sentence, exits non-zero, and leaves the store as it was.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir } from "../helpers/tmp.js";
import { stubImage } from "../helpers/stub-image.js";
import type { ListResult } from "../../src/index.js";

const STORE = "var/lib/kairos/extensions";

/** A node root on its own tmpfs, with one image enabled in common, then remounted read-only. */
async function readOnlyRoot(t: TestContext): Promise<string> {
  // One after-hook that unmounts before removing: hooks run in the order they were added.
  const root = await mkdtemp(path.join(tmpdir(), "extctl-ro-"));
  t.after(async () => {
    execFileSync("umount", ["-l", root]);
    await rm(root, { recursive: true, force: true });
  });
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m", "ro-node", root]);
  await mkdir(path.join(root, "usr/lib"), { recursive: true });
  await writeFile(path.join(root, "usr/lib/os-release"), "ID=debian\n");
  const src = path.join(await tempDir(t), "a.raw");
  await writeFile(src, stubImage("image"));
  assert.equal((await runExtctl(["--root", root, "sysext", "install", `file://${src}`])).code, 0);
  assert.equal((await runExtctl(["--root", root, "sysext", "enable", "a", "--common"])).code, 0);
  execFileSync("mount", ["-o", "remount,ro", root]);
  return root;
}

async function snapshot(root: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, e.name);
      if (e.isSymbolicLink()) lines.push(`${p} -> ${await readlink(p)}`);
      else if (e.isDirectory()) await walk(p);
      else lines.push(p);
    }
  };
  await walk(root);
  return lines.sort().join("\n");
}

describe("bad input", () => {
  test("on a read-only filesystem every changing verb fails with a clear message and changes nothing", async (t) => {
    if (!requirePeers(t, ["mount", "umount"], { root: true })) return;
    const root = await readOnlyRoot(t);
    const src = path.join(await tempDir(t), "b.raw");
    await writeFile(src, stubImage("image"));
    const before = await snapshot(root);
    for (const args of [
      ["sysext", "install", `file://${src}`],
      ["sysext", "enable", "a", "--active"],
      ["sysext", "disable", "a", "--common"],
      ["sysext", "remove", "a"],
      ["sysext", "enable", "a", "--common", "--now"],
    ]) {
      const result = await runExtctl(["--root", root, ...args]);
      assert.equal(result.code, 1, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, /read-only/, args.join(" "));
      assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
    }
    assert.equal(await snapshot(root), before);
    // Reading still works on a read-only node.
    const listed = await runExtctl(["--root", root, "sysext", "list", "--json"]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      jsonOf<ListResult>(listed).images.map((i) => i.name),
      ["a.raw"],
    );
  });

  test("a file where the store directory should be is reported and left alone", async (t) => {
    const root = await tempDir(t);
    await mkdir(path.join(root, "var/lib/kairos"), { recursive: true });
    await writeFile(path.join(root, STORE), "not a dir");
    const src = path.join(await tempDir(t), "a.raw");
    await writeFile(src, stubImage("image"));
    const result = await runExtctl(["--root", root, "sysext", "install", `file://${src}`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /should be the store directory, but a file is there/);
  });

  for (const uri of [
    "ftp://example.org/a.raw",
    "example.org/a.raw",
    "https://",
    "oci://Bad Ref",
    "file:",
  ]) {
    test(`the URI ${JSON.stringify(uri)} is refused with a clear sentence`, async (t) => {
      const root = await tempDir(t);
      const result = await runExtctl(["--root", root, "sysext", "install", uri]);
      // A word with a slash that is no URI is neither a URI nor a catalog name: a usage error.
      assert.equal(result.code, uri === "example.org/a.raw" ? 2 : 1, result.stderr);
      assert.match(result.stderr, /^extctl: .*(URI|URL|reference|scheme)/m);
      assert.deepEqual(await readdir(path.join(root, STORE)).catch(() => []), []);
    });
  }

  test("a missing profile flag is a usage error (exit 2) naming the flags", async (t) => {
    const root = await tempDir(t);
    const result = await runExtctl(["--root", root, "sysext", "enable", "a"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /either --active, --passive, --recovery or --common must be set/);
    const two = await runExtctl(["--root", root, "sysext", "list", "--active", "--common"]);
    assert.equal(two.code, 2);
    assert.match(two.stderr, /only one of --active, --passive, --recovery or --common can be set/);
  });
});

describe("confext on systemd 252", () => {
  test("enable --now says systemd-confext is missing and undoes its links", async (t) => {
    if (!requirePeers(t, ["systemd-sysext"], { root: true })) return;
    const root = await tempDir(t);
    await mkdir(path.join(root, "usr/lib"), { recursive: true });
    await writeFile(path.join(root, "usr/lib/os-release"), "ID=debian\n");
    const src = path.join(await tempDir(t), "net.confext.raw");
    await writeFile(src, stubImage("image"));
    assert.equal(
      (await runExtctl(["--root", root, "confext", "install", `file://${src}`])).code,
      0,
    );
    // PATH without systemd-confext, as on Debian 12 (systemd 252 has none).
    const result = await runExtctl(
      ["--root", root, "confext", "enable", "net", "--common", "--now"],
      {
        env: { PATH: "/nonexistent" },
      },
    );
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /systemd-confext is not installed/);
    assert.match(result.stderr, /systemd 254 or newer/);
    assert.deepEqual(await readdir(path.join(root, "var/lib/kairos/confexts/common")), []);
    assert.deepEqual(await readdir(path.join(root, "run/confexts")).catch(() => []), []);
  });
});

describe("output", () => {
  test("a reader that closes stdout early (| head) does not crash extctl", async (t) => {
    const root = await tempDir(t);
    const store = path.join(root, STORE);
    await mkdir(store, { recursive: true });
    for (let i = 0; i < 300; i++) await writeFile(path.join(store, `image-${i}.raw`), "x");
    const { spawnSync } = await import("node:child_process");
    const { EXTCTL_BIN } = await import("../helpers/cli.js");
    const r = spawnSync(
      "sh",
      [
        "-c",
        `"${process.execPath}" "${EXTCTL_BIN}" --root "${root}" sysext list --json | head -c 10 >/dev/null`,
      ],
      { encoding: "utf8" },
    );
    assert.doesNotMatch(r.stderr, /EPIPE|internal error/);
  });

  test("a non-blocking stdout pipe read slowly gets every byte, in order (write(2) gives way to the stream on EAGAIN)", async (t) => {
    if (!requirePeers(t, ["python3"])) return;
    const root = await tempDir(t);
    const store = path.join(root, STORE);
    await mkdir(store, { recursive: true });
    // ~100 KiB of JSON: more than a pipe holds (64 KiB), so the writer meets a full pipe.
    for (let i = 0; i < 300; i++) await writeFile(path.join(store, `image-${i}.raw`), "x");
    const args = ["--root", root, "sysext", "list", "--json"];
    const expected = await runExtctl(args);
    assert.equal(expected.code, 0, expected.stderr);
    assert.ok(expected.stdout.length > 70_000, `${expected.stdout.length} bytes`);
    const { spawnSync } = await import("node:child_process");
    const { EXTCTL_BIN } = await import("../helpers/cli.js");
    // python3 hands extctl a pipe whose write end is O_NONBLOCK (Node never sets that on a
    // descriptor it inherits), waits until extctl has filled it, then drains it.
    const harness = [
      "import os, subprocess, sys, time",
      "r, w = os.pipe()",
      "os.set_blocking(w, False)",
      "p = subprocess.Popen(sys.argv[1:], stdout=w)",
      "os.close(w)",
      "time.sleep(0.5)",
      "data = b''",
      "while True:",
      "    chunk = os.read(r, 65536)",
      "    if not chunk: break",
      "    data += chunk",
      "sys.stdout.buffer.write(data)",
      "sys.exit(p.wait())",
    ].join("\n");
    const r = spawnSync("python3", ["-c", harness, process.execPath, EXTCTL_BIN, ...args], {
      encoding: "utf8",
      maxBuffer: 16 << 20,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /EAGAIN|internal error/);
    assert.equal(r.stdout, expected.stdout);
  });
});
