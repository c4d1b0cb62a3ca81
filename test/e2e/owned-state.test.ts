// Issue 24 item 3, end to end with the real CLI: under `umask 000` every directory and file
// extctl makes has its own mode (0755, 0644), so an unprivileged user (setpriv to nobody) can
// neither replace an installed image nor plant state; a summary cache or a version record that
// such a user wrote where they could is ignored with a warning (list does not show its forged
// SIGNED or version), while the same bytes written by root are believed (the test can fail);
// extctl refuses to write into a store directory others can write, and breaks a planted lock.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  readFile,
  readdir,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import { runExtctl, type CliResult } from "../helpers/cli.js";
import { buildSignedDdi } from "../helpers/crafted-ddi.js";
import { makeSampleImage } from "../helpers/images.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

const STORE = "var/lib/kairos/extensions";
const CACHE = ".extctl-cache.json";
const NOBODY = 65534;
const UMASK_000 = ["sh", "-c", 'umask 000; exec "$@"', "sh"];

/** Runs a shell command as nobody (no groups); returns its exit status and stderr. */
function asNobody(script: string): { status: number; stderr: string } {
  const r = spawnSync(
    "setpriv",
    [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "sh", "-c", script],
    { encoding: "utf8" },
  );
  return { status: r.status ?? 128, stderr: r.stderr };
}

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);
  return r;
}

/** Every directory and regular file below `dir` with its permission bits, symlinks left out. */
async function modes(dir: string, base = dir): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const name of await readdir(dir)) {
    const file = path.join(dir, name);
    const st = await lstat(file);
    if (st.isSymbolicLink()) continue;
    out.set(path.relative(base, file), st.mode & 0o7777);
    if (st.isDirectory()) for (const [k, v] of await modes(file, base)) out.set(k, v);
  }
  return out;
}

/** A node root nobody can walk into (as / is), with an unsigned image `hello.raw` in work. */
async function fixture(t: TestContext) {
  const root = await tempRoot(t);
  await chmod(root, 0o755);
  const work = await tempDir(t);
  const image = await makeSampleImage(work, {
    fileName: "hello.raw",
    release: "ID=_any\nSYSEXT_VERSION_ID=1.0.0\n",
    files: { "usr/bin/hello": "#!/bin/sh\necho hi\n" },
  });
  const cli = (args: string[], prefix?: readonly string[]) =>
    runExtctl(["--root", root, "sysext", ...args], prefix ? { prefix } : {});
  return { root, image, cli, store: path.join(root, STORE) };
}

interface Listed {
  images: { name: string; version?: string; signed?: boolean }[];
}

test("under umask 000 install, enable and list make every directory 0755 and file 0644, and nobody can replace the image", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "setpriv"], { root: true })) return;
  const { root, image, cli, store } = await fixture(t);
  const before = new Set((await modes(root)).keys());
  ok(await cli(["install", `file://${image}`], UMASK_000), "install");
  ok(await cli(["enable", "hello", "--common"], UMASK_000), "enable");
  ok(await cli(["enable", "hello", "--active"], UMASK_000), "enable --active");
  // Cached only once the image is 2 s old: the second list writes the cache.
  await new Promise((r) => setTimeout(r, 2100));
  ok(await cli(["list"], UMASK_000), "list");
  assert.ok((await readdir(store)).includes(CACHE), "list wrote its cache");

  const made = [...(await modes(root))].filter(([p]) => !before.has(p));
  assert.ok(made.length >= 8, `extctl made: ${made.map(([p]) => p).join(", ")}`);
  for (const [p, mode] of made) {
    const st = await stat(path.join(root, p));
    const want = st.isDirectory() ? 0o755 : 0o644;
    assert.equal(mode.toString(8), want.toString(8), `${p} (made under umask 000)`);
    assert.equal(st.uid, 0, `${p} is root's`);
  }
  for (const p of [STORE, `${STORE}/common`, `${STORE}/active`, `${STORE}/${CACHE}`, "run/lock"])
    assert.ok(
      made.some(([q]) => q === p),
      `${p} was made by extctl`,
    );

  // list needs no root: nobody reads the store and believes root's cache, without a warning.
  const asUser = await cli(
    ["list", "--json"],
    ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups"],
  );
  assert.equal(asUser.code, 0, asUser.stderr);
  assert.equal(asUser.stderr, "");
  const listed = (JSON.parse(asUser.stdout) as Listed).images;
  assert.deepEqual(
    listed.map((i) => [i.name, i.version, i.signed]),
    [["hello.raw", "1.0.0", false]],
  );

  // Nobody can write into the store: not replace the image, not plant a file or a cache.
  const planted = asNobody(
    `echo x > '${store}/evil.raw' || exit 1; mv -f '${store}/evil.raw' '${store}/hello.raw'`,
  );
  assert.notEqual(planted.status, 0);
  assert.match(planted.stderr, /Permission denied/);
  assert.notEqual(asNobody(`echo '{}' > '${store}/${CACHE}'`).status, 0);
  assert.notEqual(asNobody(`rm -f '${store}/hello.raw'`).status, 0);
  assert.notEqual(asNobody(`ln -sf /tmp/x '${store}/common/hello.raw'`).status, 0);
  assert.notEqual(asNobody(`echo 1 > '${root}/run/lock/extctl.lock'`).status, 0);
  assert.deepEqual(await readFile(path.join(store, "hello.raw")), await readFile(image));
});

test("a summary cache nobody forged in a store others could write is ignored with a warning; root's own is believed", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "setpriv"], { root: true })) return;
  const { image, cli, store } = await fixture(t);
  ok(await cli(["install", `file://${image}`]), "install");
  await new Promise((r) => setTimeout(r, 2100));
  ok(await cli(["list"]), "list writes the cache");
  const real = JSON.parse(await readFile(path.join(store, CACHE), "utf8")) as {
    entries: Record<string, { summary: Record<string, unknown> }>;
  };
  const entry = real.entries["hello.raw"];
  assert.ok(entry, "the cache knows hello.raw");
  assert.equal(entry.summary.signaturePartition, false);
  // The forgery: the real key (identity of the image, which anyone can stat), a signed image
  // of another version.
  entry.summary = { ...entry.summary, version: "9.9.9-trusted", signaturePartition: true };
  const forged = JSON.stringify(real);
  const shown = async () => {
    const r = ok(await cli(["list", "--json"]), "list");
    const hello = (JSON.parse(r.stdout) as Listed).images.find((i) => i.name === "hello.raw");
    return { version: hello?.version, signed: hello?.signed, stderr: r.stderr };
  };
  assert.deepEqual((await shown()).version, "1.0.0");

  // What an old extctl under umask 000 left: a store anyone can write. Nobody replaces the cache.
  await chmod(store, 0o777);
  const staged = path.join(path.dirname(store), "forged.json");
  await writeFile(staged, forged, { mode: 0o644 });
  const wrote = asNobody(`cp '${staged}' '${store}/.f' && mv -f '${store}/.f' '${store}/${CACHE}'`);
  assert.equal(wrote.status, 0, wrote.stderr);
  assert.equal((await stat(path.join(store, CACHE))).uid, NOBODY);
  let seen = await shown();
  assert.deepEqual([seen.version, seen.signed], ["1.0.0", false]);
  assert.match(seen.stderr, /warning: ignoring the summary cache .*extctl-cache\.json/);
  assert.match(seen.stderr, /writable by group and others \(mode 0777\)/);
  // And nothing root writes there is trusted either: extctl refuses to install into it.
  const refused = await cli(["install", `file://${image}`, "--name", "other.raw"]);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /could have been changed by someone other than root/);
  assert.match(refused.stderr, /chmod 0755/);
  assert.ok(!(await readdir(store)).includes("other.raw"));

  // The directory closed again, the file nobody left behind is still not believed...
  await chmod(store, 0o755);
  seen = await shown();
  assert.deepEqual([seen.version, seen.signed], ["1.0.0", false]);
  assert.match(seen.stderr, /owned by uid 65534, not root/);
  // ...and that list replaced it with root's own.
  assert.equal((await stat(path.join(store, CACHE))).uid, 0);

  // Control: the same forged bytes, written by root (as extctl writes its cache) are believed,
  // so what kept the forgery out above is the owner rule and nothing else.
  await writeFile(path.join(store, CACHE), forged, { mode: 0o644 });
  seen = await shown();
  assert.deepEqual([seen.version, seen.signed], ["9.9.9-trusted", true]);
  assert.doesNotMatch(seen.stderr, /warning/);
  // --verify never takes the cache's word.
  const verified = ok(await cli(["list", "--verify", "--json"]), "list --verify");
  const hello = (JSON.parse(verified.stdout) as Listed).images[0];
  assert.deepEqual([hello?.version, hello?.signed], ["1.0.0", false]);
});

test("a version record nobody forged is ignored with a warning; root's is believed", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "setpriv"], { root: true })) return;
  const { image, cli, store } = await fixture(t);
  ok(await cli(["install", `file://${image}`]), "install");
  const dir = path.join(store, ".versions", "hello");
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await link(path.join(store, "hello.raw"), path.join(dir, "9.9.9-trusted-local.raw"));
  const record = JSON.stringify({
    format: 1,
    name: "hello",
    pinned: false,
    catalogs: [],
    versions: [
      {
        version: "9.9.9-trusted",
        file: "9.9.9-trusted-local.raw",
        reference: "oci://example.org/hello@sha256:" + "0".repeat(64),
        installedAt: new Date().toISOString(),
      },
    ],
    rolledBack: [],
  });
  const staged = path.join(path.dirname(store), "record.json");
  await writeFile(staged, record, { mode: 0o644 });
  await chmod(dir, 0o777);
  const wrote = asNobody(`cp '${staged}' '${dir}/record.json'`);
  assert.equal(wrote.status, 0, wrote.stderr);
  await chmod(dir, 0o755);

  const forged = await cli(["versions", "hello", "--installed", "--json"]);
  assert.equal(forged.code, 1, forged.stdout);
  assert.doesNotMatch(forged.stdout, /9\.9\.9-trusted/);
  assert.match(
    forged.stderr,
    /warning: ignoring .*record\.json \(a version record\): it is owned by uid 65534/,
  );
  assert.match(forged.stderr, /was not installed by name/);

  // The same bytes in a file root made.
  await rm(path.join(dir, "record.json"));
  await writeFile(path.join(dir, "record.json"), record, { mode: 0o644 });
  const own = ok(await cli(["versions", "hello", "--installed", "--json"]), "versions");
  assert.match(own.stdout, /9\.9\.9-trusted/);
});

test("a lock file nobody planted in a sticky /run/lock is broken with a warning, not waited for", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "setpriv"], { root: true })) return;
  const { root, image, cli, store } = await fixture(t);
  const lockDir = path.join(root, "run/lock");
  await mkdir(lockDir, { recursive: true });
  await chmod(lockDir, 0o1777);
  // The pid of a live process (pid 1), so that only the owner rule can break it.
  const planted = asNobody(`echo 1 > '${lockDir}/extctl.lock'`);
  assert.equal(planted.status, 0, planted.stderr);
  const r = ok(await cli(["install", `file://${image}`]), "install");
  assert.match(
    r.stderr,
    /warning: the lock .*extctl\.lock was not made by extctl: it is owned by uid 65534/,
  );
  assert.ok((await readdir(store)).includes("hello.raw"));
  assert.equal(
    ((await stat(lockDir)).mode & 0o7777).toString(8),
    "1777",
    "/run/lock is left as it was",
  );
});

test("a certificate in /etc/verity.d counts only when root owns it and no one else can write it or its directory", async (t) => {
  if (!requirePeers(t, ["mksquashfs", "openssl", "veritysetup"], { root: true })) return;
  const { root, cli, store } = await fixture(t);
  const work = await tempDir(t);
  const signed = await buildSignedDdi(work);
  ok(await cli(["install", `file://${signed.file}`]), "install the signed image");
  const trustDir = path.join(root, "etc/verity.d");
  await mkdir(trustDir, { recursive: true, mode: 0o755 });
  const cert = path.join(trustDir, "signer.crt");
  await writeFile(cert, await readFile(signed.cert), { mode: 0o644 });
  const trusted = async () => {
    const r = ok(await cli(["list", "--verify", "--json"]), "list --verify");
    const image = (
      JSON.parse(r.stdout) as { images: { name: string; trust?: { trusted: boolean } }[] }
    ).images.find((i) => i.name === "img.sysext.raw");
    return { trusted: image?.trust?.trusted, stderr: r.stderr };
  };
  assert.deepEqual(await trusted(), { trusted: true, stderr: "" });
  await chmod(cert, 0o666);
  let seen = await trusted();
  assert.equal(seen.trusted, false);
  assert.match(
    seen.stderr,
    /not trusting the certificate .*signer\.crt: it is writable by group and others \(mode 0666\)/,
  );
  await chmod(cert, 0o644);
  await chown(cert, NOBODY, NOBODY);
  seen = await trusted();
  assert.equal(seen.trusted, false);
  assert.match(seen.stderr, /owned by uid 65534/);
  await chown(cert, 0, 0);
  await chmod(trustDir, 0o777);
  seen = await trusted();
  assert.equal(seen.trusted, false);
  assert.match(seen.stderr, /its directory it is writable by group and others \(mode 0777\)/);
  await chmod(trustDir, 0o755);
  assert.equal((await trusted()).trusted, true);
  assert.ok((await readdir(store)).includes("img.sysext.raw"));
});
