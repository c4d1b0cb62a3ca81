// Issue 12, what comes in through `install`: store files never setuid, names printable, hostile
// OCI layers (bad first entries, random zstd, gzip bombs) refused in bounded time with a clear
// error and nothing left behind. Every hostile input is made here, at test time; the real CLI
// and a real docker-registry are used.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmod, mkdir, readFile, readdir, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { runExtctl } from "../helpers/cli.js";
import { makeSampleImage } from "../helpers/images.js";
import { requirePeers } from "../helpers/peers.js";
import { makeLayout, makeTar, pushLayout, startRegistry } from "../helpers/registry.js";
import { withHttpsServer } from "../helpers/https-server.js";
import { tempDir, tempNodeRoot, tempRoot } from "../helpers/tmp.js";

const STORE = "var/lib/kairos/extensions";
const OCI_PEERS = ["docker-registry", "skopeo"];

/** Deterministic pseudo-random bytes for one seed. */
function seeded(seed: number, size: number): Buffer {
  const out: Buffer[] = [];
  let block = Buffer.from(`seed-${seed}`);
  for (let n = 0; n < size; n += block.length) {
    block = createHash("sha256").update(block).digest();
    out.push(block);
  }
  return Buffer.concat(out).subarray(0, size);
}

/** The files in the store (profile directories such as common/ aside). */
async function storeEntries(root: string): Promise<string[]> {
  const entries = await readdir(path.join(root, STORE), { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => !e.isDirectory())
    .map((e) => e.name)
    .sort();
}

test("install file: from a chmod 4755 source stores a root-owned 0644 image", async (t) => {
  if (!requirePeers(t, ["mksquashfs"], { root: true })) return;
  const dir = await tempDir(t);
  const src = await makeSampleImage(dir, { fileName: "suid.raw", release: "ID=_any\n" });
  await chmod(src, 0o4755);
  const other = await makeSampleImage(dir, { fileName: "open.raw", release: "ID=_any\n" });
  await chmod(other, 0o2777);
  const root = await tempRoot(t);
  for (const file of [src, other]) {
    const r = await runExtctl(["--root", root, "sysext", "install", `file://${file}`]);
    assert.equal(r.code, 0, r.stderr);
  }
  for (const name of ["suid.raw", "open.raw"]) {
    const st = await stat(path.join(root, STORE, name));
    assert.equal(st.mode & 0o7777, 0o644, `${name} is ${(st.mode & 0o7777).toString(8)}`);
    assert.equal(st.uid, 0);
  }
});

test("image names with newline, CR, ESC, DEL or C1 controls are refused at every way in", async (t) => {
  if (!requirePeers(t, ["mksquashfs"], { root: true })) return;
  const dir = await tempDir(t);
  const src = await makeSampleImage(dir, { fileName: "good.raw", release: "ID=_any\n" });
  const root = await tempRoot(t);
  const bad = [
    "x\nfake  row.raw",
    "x\r.raw",
    "x\x1b[31m.raw",
    "x\x7f.raw",
    "x\u0085.raw",
    "x\u202e.raw",
  ];
  for (const name of bad) {
    const r = await runExtctl([
      "--root",
      root,
      "sysext",
      "install",
      `file://${src}`,
      "--name",
      name,
    ]);
    assert.notEqual(r.code, 0, JSON.stringify(name));
    assert.match(r.stderr, /refusing the image name .*non-printable/);
    assert.ok(!r.stderr.includes(name), "the raw name is not echoed");
  }
  // A percent-encoded newline in a URL's last segment (refused before any connection).
  const url = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    "https://127.0.0.1:9/a%0Ab.raw",
  ]);
  assert.notEqual(url.code, 0);
  assert.match(url.stderr, /refusing the image name "a\\u\{a\}b.raw"/);
  // A file: source whose own file name holds an ESC.
  const escName = path.join(dir, "e\x1bvil.raw");
  await writeFile(escName, "x");
  const file = await runExtctl(["--root", root, "sysext", "install", `file:${escName}`]);
  assert.notEqual(file.code, 0);
  assert.match(file.stderr, /refusing the image name/);
  assert.deepEqual(await storeEntries(root), []);
});

test("an OCI classic image with a control character in a file name is refused by name", async (t) => {
  if (!requirePeers(t, OCI_PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  pushLayout(
    await makeLayout(t, [{ layers: [{ files: [{ name: "evil\n.raw", data: seeded(1, 8192) }] }] }]),
    `${registry.host}/exts/evil:1`,
  );
  const root = await tempRoot(t);
  const r = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    `oci://${registry.host}/exts/evil:1`,
    "--insecure-registry",
    registry.host,
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /a file named "evil\\u\{a\}.raw".*non-printable/);
  assert.deepEqual(await storeEntries(root), []);
});

for (const [label, entry] of [
  ["absolute", "/x.sysext.raw"],
  ["climbing", "../x.sysext.raw"],
] as const) {
  test(`an uncompressed layer whose first entry is ${label} fails with a clear message`, async (t) => {
    if (!requirePeers(t, OCI_PEERS, { root: true })) return;
    const registry = await startRegistry(t);
    const tar = await makeTar([{ name: entry, data: seeded(2, 8192) }]);
    pushLayout(
      await makeLayout(t, [{ layers: [{ files: [], compression: "none", blob: tar }] }]),
      `${registry.host}/exts/first:1`,
    );
    const root = await tempRoot(t);
    const r = await runExtctl([
      "--root",
      root,
      "sysext",
      "install",
      `oci://${registry.host}/exts/first:1`,
      "--insecure-registry",
      registry.host,
    ]);
    assert.equal(r.code, 1, `exit ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, label === "absolute" ? /absolute path/ : /climbs out with "\.\."/);
    assert.deepEqual(await storeEntries(root), []);
  });
}

test("30 zstd layers of random bytes each fail within the timeout and release the lock", async (t) => {
  if (!requirePeers(t, OCI_PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  const root = await tempRoot(t);
  const slowest = { ms: 0, seed: -1 };
  for (let seed = 0; seed < 30; seed++) {
    // Large enough that the registry is still sending when the decompressor fails.
    const blob = seeded(seed, 4 << 20);
    if (seed % 2 === 0) blob.writeUInt32LE(0xfd2fb528, 0); // half start like a real zstd frame
    pushLayout(
      await makeLayout(t, [{ layers: [{ files: [], compression: "zstd", blob }] }]),
      `${registry.host}/z/r${seed}:1`,
    );
    const started = Date.now();
    const r = await runExtctl(
      [
        "--root",
        root,
        "sysext",
        "install",
        `oci://${registry.host}/z/r${seed}:1`,
        "--insecure-registry",
        registry.host,
        "--timeout",
        "5",
      ],
      { timeoutMs: 20_000 },
    );
    const ms = Date.now() - started;
    if (ms > slowest.ms) Object.assign(slowest, { ms, seed });
    assert.equal(r.code, 1, `seed ${seed}: exit ${r.code} after ${ms} ms: ${r.stderr}`);
    assert.match(
      r.stderr,
      /not a valid (zstd|gzip) tar archive|not an extension image/,
      `seed ${seed}`,
    );
    assert.ok(ms < 10_000, `seed ${seed} took ${ms} ms`);
  }
  // The lock was released every time: a plain list does not wait.
  const list = await runExtctl(["--root", root, "sysext", "list"], { timeoutMs: 10_000 });
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(await storeEntries(root), []);
  t.diagnostic(`slowest: seed ${slowest.seed}, ${slowest.ms} ms`);
});

test("a 3 MB gzip layer that expands past --max-size is refused and leaves nothing", async (t) => {
  if (!requirePeers(t, OCI_PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  // One 1 GiB file of zeros (tar header + data), gzipped to about 1 MB at test time.
  const header = await makeTar([{ name: "bomb.sysext.raw", data: Buffer.alloc(0) }]);
  const head = Buffer.from(header.subarray(0, 512));
  const size = 1 << 30;
  head.write(size.toString(8).padStart(11, "0") + "\0", 124, "latin1");
  head.fill(" ", 148, 156);
  let sum = 0;
  for (const b of head) sum += b;
  head.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
  const zero = Buffer.alloc(1 << 20);
  const gzip = (await import("node:zlib")).createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gzip.on("data", (c: Buffer) => chunks.push(c));
  const ended = new Promise((resolve) => gzip.on("end", resolve));
  gzip.write(head);
  for (let i = 0; i < size / zero.length; i++) gzip.write(zero);
  gzip.end(Buffer.alloc(1024));
  await ended;
  const blob = Buffer.concat(chunks);
  assert.ok(blob.length < 3 << 20, `the bomb is ${blob.length} bytes`);
  pushLayout(
    await makeLayout(t, [{ layers: [{ files: [], compression: "gzip", blob }] }]),
    `${registry.host}/exts/bomb:1`,
  );
  const root = await tempRoot(t);
  const r = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    `oci://${registry.host}/exts/bomb:1`,
    "--insecure-registry",
    registry.host,
    "--max-size",
    "64M",
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /expands to more than 64 MiB, what --max-size allows/);
  assert.deepEqual(await storeEntries(root), []);
});

test("a classic OCI layer holding a .raw that is no image is refused before it is stored", async (t) => {
  if (!requirePeers(t, OCI_PEERS, { root: true })) return;
  const registry = await startRegistry(t);
  pushLayout(
    await makeLayout(t, [
      {
        layers: [{ files: [{ name: "zeros.sysext.raw", data: gzipSync(Buffer.alloc(1 << 16)) }] }],
      },
    ]),
    `${registry.host}/exts/zeros:1`,
  );
  const root = await tempRoot(t);
  const r = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    `oci://${registry.host}/exts/zeros:1`,
    "--insecure-registry",
    registry.host,
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /"zeros.sysext.raw" from .* is not an extension image/);
  assert.deepEqual(await storeEntries(root), []);
});

test("systemd install --extctl with a newline, a space or a % specifier is refused and writes no unit", async (t) => {
  if (!requirePeers(t, [], { root: true })) return;
  const root = await tempRoot(t);
  for (const extctl of [
    "/usr/bin/extctl\nExecStartPre=/bin/sh -c 'touch /pwned'",
    "/usr/bin/ext ctl",
    "/usr/bin/%h/extctl",
    "usr/bin/extctl",
    "/usr/bin/extctl\x1b[2K",
  ]) {
    const r = await runExtctl(["--root", root, "systemd", "install", "--extctl", extctl]);
    assert.equal(r.code, 2, `${JSON.stringify(extctl)}: ${r.stderr}`);
    assert.match(r.stderr, /--extctl .*(not an absolute path|would read differently)/);
  }
  assert.deepEqual(await readdir(path.join(root, "etc")), [], "no unit dir was made");
  const ok = await runExtctl(["--root", root, "systemd", "install", "--extctl", "/opt/x/extctl"]);
  assert.equal(ok.code, 0, ok.stderr);
});

test("a classic OCI image carrying victim.raw does not replace the installed, enabled victim.raw without --replace", async (t) => {
  if (!requirePeers(t, [...OCI_PEERS, "mksquashfs"], { root: true })) return;
  const dir = await tempDir(t);
  const victim = await makeSampleImage(dir, { fileName: "victim.raw", release: "ID=_any\n" });
  const root = await tempRoot(t);
  assert.equal(
    (await runExtctl(["--root", root, "sysext", "install", `file://${victim}`])).code,
    0,
  );
  assert.equal(
    (await runExtctl(["--root", root, "sysext", "enable", "victim", "--common"])).code,
    0,
  );
  const original = createHash("sha256")
    .update(await readFile(path.join(root, STORE, "victim.raw")))
    .digest("hex");
  const evilTree = await makeSampleImage(dir, {
    fileName: "evil.raw",
    release: "ID=_any\n",
    files: { "usr/bin/x": "evil" },
  });
  const evil = await readFile(evilTree);
  const registry = await startRegistry(t);
  pushLayout(
    await makeLayout(t, [
      {
        layers: [
          {
            files: [
              { name: "tool.raw", data: evil },
              { name: "victim.raw", data: evil },
            ],
          },
        ],
      },
    ]),
    `${registry.host}/exts/tool:1`,
  );
  const args = ["--root", root, "sysext", "install", `oci://${registry.host}/exts/tool:1`];
  args.push("--insecure-registry", registry.host);
  const refused = await runExtctl(args);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /would replace the victim.raw already installed.*\n.*--replace/);
  assert.deepEqual(await storeEntries(root), ["victim.raw"], "nothing was added either");
  const still = createHash("sha256")
    .update(await readFile(path.join(root, STORE, "victim.raw")))
    .digest("hex");
  assert.equal(still, original);
  // The image's own file may be re-installed; with --replace the other one goes too.
  const replaced = await runExtctl([...args, "--replace"]);
  assert.equal(replaced.code, 0, replaced.stderr);
  assert.deepEqual(await storeEntries(root), ["tool.raw", "victim.raw"]);
  const again = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    `oci://${registry.host}/exts/tool:1`,
    "--insecure-registry",
    registry.host,
  ]);
  assert.equal(again.code, 1, "victim.raw is still not tool's own");
});

test("boot links only what systemd would merge: an image it would refuse is skipped with the reason, the others merge", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs", "mount", "umount"], { root: true })) return;
  const work = await tempDir(t);
  const good = await makeSampleImage(work, {
    fileName: "good.raw",
    release: "ID=_any\n",
    files: { "usr/share/good/hello": "hi\n" },
  });
  const alien = await makeSampleImage(work, {
    fileName: "alien.raw",
    release: "ID=nosuchos\nVERSION_ID=1\n",
    files: { "usr/share/alien/hello": "hi\n" },
  });
  // Each form gets a node of its own: a second refresh of the same merge is another test.
  const node = async () => {
    const root = await tempNodeRoot(t); // its own /run tmpfs; unmounted (and unmerged) at the end
    const store = path.join(root, STORE);
    await mkdir(path.join(store, "active"), { recursive: true });
    for (const file of [good, alien]) {
      await writeFile(path.join(store, path.basename(file)), await readFile(file));
      await symlink(`../${path.basename(file)}`, path.join(store, "active", path.basename(file)));
    }
    return root;
  };
  const cmdline = path.join(work, "cmdline");
  await writeFile(cmdline, "BOOT_IMAGE=/vmlinuz root=LABEL=COS_ACTIVE ro\n");
  // systemd-sysext 262 now and then fails the whole merge ("Failed to merge hierarchies") when
  // many merges run at once on the machine; that is not what this test checks, so such a boot
  // is tried once more on a new node (and said in the diagnostics).
  const boot = async (...extra: string[]) => {
    const args = ["boot", "--cmdline", cmdline, "--policy", "any", ...extra];
    let run = await runExtctl(["--root", await node(), ...args]);
    if (/refreshing sysext failed: .*Failed to merge hierarchies/.test(run.stderr)) {
      t.diagnostic(`systemd-sysext failed the whole merge, trying once more: ${run.stderr}`);
      run = await runExtctl(["--root", await node(), ...args]);
    }
    return run;
  };
  // Issue 24 item 7: one image systemd refuses can abort the whole merge (252 does), so boot links
  // only what `check` calls MERGES for the root's systemd and names the rest.
  const r = await boot();
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /sysext: merged good/);
  const json = await boot("--json");
  assert.equal(json.code, 0, json.stderr);
  const result = JSON.parse(json.stdout) as {
    linked: { name: string }[];
    skipped: { name: string; outcome?: string; reason?: string }[];
    refresh: { kind: string; error?: string; unmerged: { name: string }[] }[];
  };
  assert.deepEqual(
    result.linked.map((i) => i.name),
    ["good.raw"],
  );
  const alienSkip = result.skipped.find((i) => i.name === "alien.raw");
  assert.equal(alienSkip?.outcome, "refused", json.stdout);
  assert.match(alienSkip?.reason ?? "", /check says REFUSED for systemd \d+: .*nosuchos/);
  const sysext = result.refresh.find((x) => x.kind === "sysext");
  assert.equal(sysext?.error, undefined, json.stderr);
  assert.deepEqual(sysext?.unmerged, []);
});

test("https: without Content-Length past --max-size, and bytes that are no image, are refused; nothing is stored", async (t) => {
  if (!requirePeers(t, ["openssl", "mksquashfs"], { root: true })) return;
  const dir = await tempDir(t);
  const server = await withHttpsServer(t, { dir: path.join(dir, "certs") });
  const good = await makeSampleImage(dir, { fileName: "good.raw", release: "ID=_any\n" });
  const big = Buffer.concat([await readFile(good), seeded(3, 3 << 20)]);
  server.addFile("big.raw", big);
  server.addFile("notes.raw", seeded(4, 64 << 10));
  const root = await tempRoot(t);
  const install = (url: string, ...args: string[]) =>
    runExtctl(["--root", root, "sysext", "install", url, "--ca-cert", server.caCert, ...args]);

  // Chunked: the size is not announced, so only the cap stops it.
  const capped = await install(server.url("big.raw", "chunked"), "--max-size", "1M");
  assert.equal(capped.code, 1, capped.stderr);
  assert.match(
    capped.stderr,
    /big\.raw is more than 1\.0 MiB, what --max-size allows; refusing it, nothing was stored/,
  );
  assert.deepEqual(await storeEntries(root), []);

  const notImage = await install(server.url("notes.raw", "chunked"));
  assert.equal(notImage.code, 1, notImage.stderr);
  assert.match(notImage.stderr, /"notes\.raw" from https:.* is not an extension image/);
  assert.deepEqual(await storeEntries(root), []);

  // Under the cap, the same chunked transfer lands byte for byte.
  const ok = await install(server.url("big.raw", "chunked"), "--max-size", "8M");
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(await readFile(path.join(root, STORE, "big.raw")), big);
});

test("an OCI artifact whose blob is no extension image is refused before it is stored", async (t) => {
  if (!requirePeers(t, ["docker-registry", "mksquashfs"], { root: true })) return;
  const registry = await startRegistry(t);
  const dir = await tempDir(t);
  const notes = path.join(dir, "notes.sysext.raw");
  await writeFile(notes, seeded(5, 64 << 10));
  const pushed = await runExtctl([
    "publish",
    notes,
    `oci://${registry.host}/exts/notes:1`,
    "--insecure-registry",
    registry.host,
  ]);
  // publish pushes what it is given; the installing side is the one that must refuse.
  assert.equal(pushed.code, 0, pushed.stderr);
  const root = await tempRoot(t);
  const r = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    `oci://${registry.host}/exts/notes:1`,
    "--insecure-registry",
    registry.host,
  ]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /"notes\.sysext\.raw" from oci:.* is not an extension image/);
  assert.deepEqual(await storeEntries(root), []);
});

// Issue 24 item 1: a name is offered to shells (completion) and typed by operators, so one with
// a character a shell gives meaning to is refused wherever it comes in, the character named.
test("image names with $, backquote, quotes or other shell-special characters are refused at every way in: --name, an https URL's segment, an OCI title", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "openssl", ...OCI_PEERS], { root: true })) return;
  const dir = await tempDir(t);
  const src = await makeSampleImage(dir, { fileName: "good.raw", release: "ID=_any\n" });
  const root = await tempRoot(t);
  const cases: [string, string][] = [
    ["x$(touch${IFS}pwn).raw", '"$"'],
    ["x`touch pwn`.raw", '"`"'],
    ["it's.raw", `"'"`],
    ['say"hi".raw', '"\\u{22}"'],
    ["a;b.raw", '";"'],
    ["a|b.raw", '"|"'],
    ["g*.raw", '"*"'],
  ];
  for (const [name, shown] of cases) {
    const r = await runExtctl([
      "--root",
      root,
      "sysext",
      "install",
      `file://${src}`,
      "--name",
      name,
    ]);
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /refusing the image name/);
    assert.ok(r.stderr.includes(`holds ${shown}`), `${name}: ${r.stderr}`);
    assert.match(r.stderr, /a name may hold letters, digits, spaces and \. _ \+ - ~ @/);
  }

  // A hostile https server names the file in its URL: p$(touch${IFS}pwn).raw once decoded.
  const server = await withHttpsServer(t, { dir: path.join(dir, "https") });
  server.addFile("p$(touch${IFS}pwn).raw", await readFile(src));
  const url = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    `${server.origin}/ok/p%24(touch%24%7BIFS%7Dpwn).raw`,
    "--ca-cert",
    server.caCert,
  ]);
  assert.notEqual(url.code, 0, url.stderr);
  assert.match(url.stderr, /refusing the image name "p\$\(touch\$\{IFS\}pwn\)\.raw".*holds "\$"/);

  // An OCI artifact whose title annotation is such a name: published, then its manifest edited
  // and pushed back under another tag.
  const registry = await startRegistry(t);
  const artifact = await makeSampleImage(dir, {
    fileName: "title.sysext.raw",
    release: "ID=_any\n",
  });
  const published = await runExtctl([
    "publish",
    artifact,
    `oci://${registry.host}/exts/title:1`,
    "--insecure-registry",
    registry.host,
  ]);
  assert.equal(published.code, 0, published.stderr);
  const accept = "application/vnd.oci.image.manifest.v1+json";
  const got = await fetch(`http://${registry.host}/v2/exts/title/manifests/1`, {
    headers: { accept },
  });
  const manifest = (await got.json()) as {
    layers: { annotations: Record<string, string> }[];
  };
  (manifest.layers[0] as { annotations: Record<string, string> }).annotations[
    "org.opencontainers.image.title"
  ] = "t$(touch${IFS}pwn).raw";
  const put = await fetch(`http://${registry.host}/v2/exts/title/manifests/2`, {
    method: "PUT",
    headers: { "content-type": accept },
    body: JSON.stringify(manifest),
  });
  assert.equal(put.status, 201, await put.text());
  const oci = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    `oci://${registry.host}/exts/title:2`,
    "--insecure-registry",
    registry.host,
  ]);
  assert.equal(oci.code, 1, oci.stderr);
  assert.match(oci.stderr, /names its file "t\$\(touch\$\{IFS\}pwn\)\.raw".*holds "\$"/);

  assert.deepEqual(await storeEntries(root), []);
});
