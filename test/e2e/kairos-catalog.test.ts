// What a Kairos operator brings (issue 25 items 1-4), end to end with the real CLI: Kairos's own
// catalog test tables (sdk/extensions catalog_artifacts_test.go and catalog_test.go) served over
// file: and a real HTTPS server, images in a real docker-registry; a Kairos cloud-config with
// install.extensions applied; docker:// and container:// installs; install --enable --now merged
// by the real systemd-sysext (in this test's private mount namespace), and undone when it fails.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { access, mkdir, readFile, readdir, readlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { ARCH, catalogFixture, ok, sha256Of } from "../helpers/catalog-fixture.js";
import { helloScript, makeSampleImage } from "../helpers/images.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempNodeRoot, tempRoot } from "../helpers/tmp.js";

const STORE = "var/lib/kairos/extensions";
const REGISTRY_PEERS = ["docker-registry", "mksquashfs", "openssl"];
const OTHER = ARCH === "amd64" ? "arm64" : "amd64";

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

interface Installed {
  name: string;
  version: string;
  action: string;
}

/** Kairos's catalog_artifacts_test.go shapes, with references to images really published. */
async function kairosCatalog(f: Awaited<ReturnType<typeof catalogFixture>>) {
  const fwupd = await f.publishVersion("fwupd", "2.1.6");
  const drbd = await f.publishVersion("drbd", "9.3.2");
  const vendor = await f.publishVersion("vendor-tool", "stable");
  const elsewhere = `${f.registry.host}/exts/elsewhere@sha256:${"1".repeat(64)}`;
  // catalog_test.go: the arm64 (here: the other architecture's) digest is upper-case hex.
  const upper = fwupd.reference.replace(/@sha256:(.*)$/, (_m, hex: string) => {
    return `@sha256:${hex.toUpperCase()}`;
  });
  const json = {
    generated: new Date().toISOString(),
    repo: "kairos-io/hadron-layers",
    layers: [
      {
        name: "fwupd",
        latest: "2.1.7",
        tags: [
          { tag: "2.1.7", sysext: {} },
          {
            tag: "2.1.6",
            sysext: { [ARCH]: { oci: fwupd.reference }, [OTHER]: { oci: upper } },
          },
        ],
      },
      {
        name: "drbd",
        latest: "9.3.3",
        tags: [
          { tag: "9.3.3", sysext: { [OTHER]: { oci: elsewhere } } },
          { tag: "9.3.2", sysext: { [ARCH]: { oci: drbd.reference } } },
        ],
      },
      {
        name: "vendor-tool",
        latest: "nightly",
        tags: [
          { tag: "nightly", sysext: {} },
          { tag: "stable", sysext: { [ARCH]: { oci: vendor.reference } } },
        ],
      },
      { name: "git", latest: "2.55.0", tags: [{ tag: "2.55.0", sysext: {} }] },
      // A tag-only reference in an unrelated layer.
      {
        name: "tagged",
        latest: "1.0.0",
        tags: [
          { tag: "1.0.0", sysext: { [ARCH]: { oci: `${f.registry.host}/exts/tagged:1.0.0` } } },
        ],
      },
    ],
  };
  const text = JSON.stringify(json, null, 2);
  const file = path.join(f.dir, "releases.json");
  await writeFile(file, text);
  return { fileUrl: `file://${file}`, httpsUrl: f.serveCatalog("releases.json", text), fwupd };
}

test("Kairos's catalog tables over file: and https: fall back per architecture, keep explicit versions exact, refuse only a bad entry", async (t) => {
  if (!requirePeers(t, REGISTRY_PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const { fileUrl, httpsUrl, fwupd } = await kairosCatalog(f);
  const root = await tempRoot(t);
  for (const url of [fileUrl, httpsUrl]) {
    const install = (target: string, ...args: string[]) =>
      runExtctl(["--root", root, "sysext", "install", target, "--catalog", url, ...f.net, ...args]);
    const resolved = async (target: string) => {
      const r = ok(await install(target, "--dry-run", "--json"), `${target} from ${url}`);
      return { version: jsonOf<Installed>(r).version, stderr: r.stderr };
    };
    const refused = async (target: string) => {
      const r = await install(target, "--dry-run");
      assert.equal(r.code, 1, `${target} from ${url} should be refused: ${r.stdout}`);
      return r.stderr;
    };
    const bare = await resolved("fwupd");
    assert.equal(bare.version, "2.1.6", url);
    // The bad references elsewhere are warnings, not a rejected catalog.
    assert.match(bare.stderr, /layers\[0\]\.tags\[1\]\.sysext\.\w+\.oci .* is not host/);
    assert.match(
      bare.stderr,
      /layers\[4\]\.tags\[0\]\.sysext\.\w+\.oci .*tagged:1\.0\.0" is not pinned/,
    );
    assert.match(bare.stderr, /the latest version 2\.1\.7 has no sysext for \w+; taking 2\.1\.6/);
    assert.equal((await resolved("fwupd@>= 2.1")).version, "2.1.6");
    assert.equal((await resolved("fwupd@2.1.6")).version, "2.1.6");
    assert.equal((await resolved("drbd")).version, "9.3.2");
    assert.equal((await resolved("vendor-tool")).version, "stable");
    assert.match(
      await refused("fwupd@> 2.1.6"),
      new RegExp(
        `no version of fwupd in \\S+ that satisfies > 2\\.1\\.6 has a sysext for ${ARCH} \\(satisfying: 2\\.1\\.7 \\(none\\)\\)`,
      ),
    );
    assert.match(
      await refused("drbd@9.3.3"),
      new RegExp(
        `version 9\\.3\\.3 of drbd in \\S+ has no sysext for ${ARCH} \\(published: ${OTHER}\\)`,
      ),
    );
    assert.match(
      await refused("fwupd@2.1.7"),
      /version 2\.1\.7 of fwupd .* has no sysext image for any architecture/,
    );
    assert.match(
      await refused("git"),
      new RegExp(`no version of git in \\S+ has a sysext for ${ARCH}`),
    );
    assert.match(
      await refused("tagged"),
      /version 1\.0\.0 of tagged .* cannot be installed: .*is not pinned/,
    );
  }
  // And for real, over https: the fallback version lands in the store.
  const real = jsonOf<Installed>(
    ok(
      await runExtctl([
        "--root",
        root,
        "sysext",
        "install",
        "fwupd",
        "--catalog",
        httpsUrl,
        "--json",
        ...f.net,
      ]),
      "install fwupd",
    ),
  );
  assert.equal(real.version, "2.1.6");
  assert.equal(await sha256Of(path.join(root, STORE, "fwupd.raw")), fwupd.sha256);
});

test("a Kairos cloud-config: install.extensions (names, a mapping, docker://, an absolute path) installs and enables in active and passive", async (t) => {
  if (!requirePeers(t, REGISTRY_PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const { httpsUrl } = await kairosCatalog(f);
  // Installed from a URI, the image keeps its title (tool-1.0.raw): its release file says so.
  const tool = await f.publishVersion("tool", "1.0", undefined, {}, "tool-1.0");
  // Named the Kairos way: extension-release.local fits local.sysext.raw on 255+ and, linked as
  // local.raw, on 252-254.
  const local = await makeSampleImage(f.dir, {
    fileName: "local.sysext.raw",
    releaseName: "local",
    release: "ID=_any\n",
  });
  const root = await tempRoot(t);
  const dir = await tempDir(t);
  const file = path.join(dir, "cloud-config.yaml");
  await writeFile(
    file,
    `#cloud-config
hostname: node1
install:
  device: auto
  extensions:
    - fwupd
    - name: drbd
      version: ">= 9"
    - docker://${f.registry.host}/exts/tool:1.0
    - ${local}
extensions:
  catalogs:
    - ${httpsUrl}
  ignore_signatures: true
`,
  );
  const apply = (...args: string[]) =>
    runExtctl(["--root", root, "apply", file, "--refresh", "none", "--json", ...f.net, ...args]);
  const steps = (out: string) =>
    jsonOf<{ changed: boolean; steps: { description: string }[] }>(out);

  const plan = steps(ok(await apply("--dry-run"), "dry run").stdout);
  const described = plan.steps.map((s) => s.description);
  for (const want of [
    "set the image policy to any (/etc/extctl/policy)",
    `install sysext fwupd 2.1.6 (latest) from ${httpsUrl}`,
    `install sysext drbd 9.3.2 (>= 9) from ${httpsUrl}`,
    `install sysext (name known after download) from oci://${f.registry.host}/exts/tool:1.0`,
    `install sysext local.sysext.raw from file://${local}`,
    "enable sysext fwupd.raw in active",
    "enable sysext fwupd.raw in passive",
    "enable sysext drbd.raw in passive",
  ])
    assert.ok(described.includes(want), `${want} is not in:\n${described.join("\n")}`);
  assert.equal(await exists(path.join(root, STORE)), false, "a dry run changes nothing");

  const done = steps(ok(await apply(), "apply").stdout);
  assert.equal(done.changed, true);
  const images = (await readdir(path.join(root, STORE))).filter((n) => n.endsWith(".raw")).sort();
  assert.deepEqual(images, ["drbd.raw", "fwupd.raw", "local.sysext.raw", "tool-1.0.raw"]);
  for (const profile of ["active", "passive"]) {
    const linked = (await readdir(path.join(root, STORE, profile))).sort();
    assert.deepEqual(linked, images, profile);
  }
  assert.equal(await readlink(path.join(root, STORE, "active/tool-1.0.raw")), "../tool-1.0.raw");
  assert.equal(await sha256Of(path.join(root, STORE, "tool-1.0.raw")), tool.sha256);
  assert.equal(await readFile(path.join(root, "etc/extctl/policy"), "utf8"), "any\n");
  // Applied again: nothing to do (the URIs were installed once and are remembered).
  const again = steps(ok(await apply(), "apply again").stdout);
  assert.equal(again.changed, false, JSON.stringify(again.steps));

  // A key extctl does not handle is an error naming the file and the line.
  await writeFile(
    file,
    `install:\n  extensions:\n    - fwupd\nextensions:\n  ignore_signature: true\n`,
  );
  const typo = await apply("--dry-run");
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, new RegExp(`${file}:5: extensions\\.ignore_signature: unknown field`));
  await writeFile(file, `install:\n  extensions:\n    - name: fwupd\n      profile: active\n`);
  const mapping = await apply("--dry-run");
  assert.equal(mapping.code, 1);
  assert.match(
    mapping.stderr,
    new RegExp(`${file}:4: install\\.extensions\\[0\\]\\.profile: unknown field`),
  );
});

test("docker:// and container:// install from the real registry as oci://", async (t) => {
  if (!requirePeers(t, REGISTRY_PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  // Installed from a URI, the image keeps its title (tool-1.0.raw): its release file says so.
  const tool = await f.publishVersion("tool", "1.0", undefined, {}, "tool-1.0");
  const root = await tempRoot(t);
  for (const scheme of ["docker", "container"]) {
    const r = ok(
      await runExtctl([
        "--root",
        root,
        "sysext",
        "install",
        `${scheme}://${f.registry.host}/exts/tool:1.0`,
        "--insecure-registry",
        f.registry.host,
        "--json",
      ]),
      scheme,
    );
    const result = jsonOf<{ uri: string; images: { name: string; sha256: string }[] }>(r);
    assert.equal(result.uri, `oci://${f.registry.host}/exts/tool:1.0`);
    assert.deepEqual(
      result.images.map((i) => [i.name, i.sha256]),
      [["tool-1.0.raw", tool.sha256]],
    );
  }
});

const MERGE_PEERS = ["systemd-sysext", "mksquashfs", "unshare"];

async function mergedList(root: string): Promise<string[]> {
  const text = await readFile(path.join(root, "usr/.systemd-sysext/extensions"), "utf8").catch(
    () => "",
  );
  return text.split("\n").filter(Boolean);
}

test("install --enable --now merges for real in one step; a failed merge undoes the install and the enable", async (t) => {
  if (!requirePeers(t, MERGE_PEERS, { root: true })) return;
  const root = await tempNodeRoot(t);
  const work = await tempDir(t);
  const hello = await makeSampleImage(work, {
    fileName: "hello.raw",
    release: "ID=_any\n",
    files: { "usr/bin/hello": helloScript("hello from install --enable") },
  });
  const extctl = (...args: string[]) => runExtctl(["--root", root, ...args]);
  const link = (p: string) => readlink(path.join(root, p)).catch(() => undefined);

  const both = ok(
    await extctl(
      "sysext",
      "install",
      `file://${hello}`,
      "--enable",
      "active",
      "--enable",
      "common",
      "--now",
      "--json",
    ),
    "install --enable --now",
  );
  const result = jsonOf<{ enabled: { profile: string; merged?: boolean }[]; notLive?: string }>(
    both,
  );
  assert.deepEqual(
    result.enabled.map((e) => [e.profile, e.merged]),
    [
      ["active", undefined],
      ["common", undefined],
      ["common", true],
    ],
  );
  assert.deepEqual(await mergedList(root), ["hello"]);
  assert.equal(
    execFileSync(path.join(root, "usr/bin/hello"), { encoding: "utf8" }).trim(),
    "hello from install --enable",
  );
  assert.equal(await link(`${STORE}/active/hello.raw`), "../hello.raw");
  assert.equal(await link(`${STORE}/common/hello.raw`), "../hello.raw");
  const good = await sha256Of(path.join(root, STORE, "hello.raw"));

  // An image this node's systemd never merges (its release file names another OS).
  const foreign = "ID=no-such-os\nVERSION_ID=1\n";
  const bad = await makeSampleImage(work, { fileName: "bad.raw", release: foreign });
  const refused = await extctl("sysext", "install", `file://${bad}`, "--enable", "common", "--now");
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(refused.stderr, /the install was undone too/);
  assert.equal(await exists(path.join(root, STORE, "bad.raw")), false, "nothing installed");
  assert.equal(await link(`${STORE}/common/bad.raw`), undefined, "nothing enabled");
  assert.equal(await link("run/extensions/bad.raw"), undefined);
  assert.deepEqual(await mergedList(root), ["hello"], "what was merged stays merged");

  // A broken replacement of a merged image: the old bytes come back and merge again.
  const brokenDir = path.join(work, "broken");
  await mkdir(brokenDir);
  const broken = await makeSampleImage(brokenDir, {
    fileName: "hello.raw",
    release: foreign,
    files: { "usr/bin/hello": helloScript("broken") },
  });
  const replaced = await extctl(
    "sysext",
    "install",
    `file://${broken}`,
    "--enable",
    "common",
    "--now",
  );
  assert.equal(replaced.code, 1, replaced.stdout);
  assert.match(replaced.stderr, /the install was undone too/);
  assert.equal(await sha256Of(path.join(root, STORE, "hello.raw")), good, "the old image is back");
  assert.equal(await link(`${STORE}/common/hello.raw`), "../hello.raw");
  assert.equal(await link(`${STORE}/active/hello.raw`), "../hello.raw");
  assert.deepEqual(await mergedList(root), ["hello"]);
  assert.equal(
    execFileSync(path.join(root, "usr/bin/hello"), { encoding: "utf8" }).trim(),
    "hello from install --enable",
  );
  const leftovers = (await readdir(path.join(root, STORE))).filter((n) => n.startsWith("."));
  assert.deepEqual(leftovers, [], "no undo copies are left behind");

  await extctl("sysext", "disable", "hello", "--common", "--now");
});

test("install --now without --enable, and --enable with a bad profile, are usage errors", async (t) => {
  const root = await tempRoot(t);
  const now = await runExtctl(["--root", root, "sysext", "install", "file:///x.raw", "--now"]);
  assert.equal(now.code, 2);
  assert.match(now.stderr, /--now goes with --enable PROFILE/);
  const typo = await runExtctl([
    "--root",
    root,
    "sysext",
    "install",
    "file:///x.raw",
    "--enable",
    "activ",
  ]);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /--enable "activ" is not a profile/);
});

test("install NAME --enable active --now from a catalog: merged when it fits; nothing installed or enabled when it cannot merge", async (t) => {
  if (!requirePeers(t, [...MERGE_PEERS, ...REGISTRY_PEERS], { root: true })) return;
  const f = await catalogFixture(t);
  const good = await f.publishVersion("tool", "1.0", "ID=_any\n", {
    "usr/bin/tool": helloScript("hello from the catalog"),
  });
  // Its release file names another OS: this node's systemd never merges it.
  const foreign = await f.publishVersion("other", "1.0", "ID=no-such-os\nVERSION_ID=1\n");
  // It fits, but an empty /etc/extensions/masked masks it: systemd would merge nothing of it.
  const masked = await f.publishVersion("masked", "1.0");
  const url = f.serveCatalog(
    "install-enable.json",
    f.catalogJson({
      tool: { latest: "1.0", tags: [{ version: "1.0", published: good }] },
      other: { latest: "1.0", tags: [{ version: "1.0", published: foreign }] },
      masked: { latest: "1.0", tags: [{ version: "1.0", published: masked }] },
    }),
  );
  const root = await tempNodeRoot(t);
  // Booted in the active profile (immucore's sentinel): --now merges right away.
  await mkdir(path.join(root, "run/cos"), { recursive: true });
  await writeFile(path.join(root, "run/cos/active_mode"), "1\n");
  const extctl = (...args: string[]) => runExtctl(["--root", root, ...args]);
  t.after(() => extctl("sysext", "disable", "tool", "--active", "--now"));
  const install = (name: string) =>
    extctl("sysext", "install", name, "--catalog", url, ...f.net, "--enable", "active", "--now");

  ok(await install("tool"), "install tool --enable active --now");
  assert.deepEqual(await mergedList(root), ["tool"], "systemd merged it");
  assert.equal(
    execFileSync(path.join(root, "usr/bin/tool"), { encoding: "utf8" }).trim(),
    "hello from the catalog",
  );
  // Stored under the name install by name gives it on this systemd (tool.raw or tool.sysext.raw).
  const images = (await readdir(path.join(root, STORE))).filter((n) => n.endsWith(".raw"));
  assert.equal(images.length, 1, images.join(","));
  const image = images[0] as string;
  assert.equal(await readlink(path.join(root, STORE, "active", image)), `../${image}`);
  const runLinks = await readdir(path.join(root, "run/extensions"));
  assert.equal(runLinks.length, 1, runLinks.join(","));

  const refused = await install("other");
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(
    refused.stderr,
    /other 1\.0 .* is not installed: it would not merge on this node: ID=no-such-os/,
  );
  const stored = await readdir(path.join(root, STORE));
  assert.ok(
    !stored.some((n) => n.startsWith("other")),
    `nothing of it stored: ${stored.join(",")}`,
  );
  assert.deepEqual(await readdir(path.join(root, STORE, "active")), [image]);
  assert.deepEqual(await readdir(path.join(root, "run/extensions")), runLinks);
  assert.deepEqual(await mergedList(root), ["tool"], "what was merged stays merged");

  await mkdir(path.join(root, "etc/extensions/masked"), { recursive: true });
  const undone = await install("masked");
  assert.equal(undone.code, 1, undone.stdout);
  // Install by name judges the version before it becomes current: refused before a byte is kept.
  assert.match(
    undone.stderr,
    /masked 1\.0 .* is not installed: .*masked by \/etc\/extensions\/masked/,
  );
  const after = await readdir(path.join(root, STORE));
  assert.ok(!after.some((n) => n.startsWith("masked")), `nothing of it stored: ${after.join(",")}`);
  assert.deepEqual(await readdir(path.join(root, STORE, "active")), [image]);
  assert.deepEqual(await readdir(path.join(root, "run/extensions")), runLinks);
  assert.deepEqual(await mergedList(root), ["tool"]);
  const listed = jsonOf<{ images: { name: string }[] }>(await extctl("sysext", "list", "--json"));
  assert.deepEqual(
    listed.images.map((i) => i.name),
    [image],
  );
});
