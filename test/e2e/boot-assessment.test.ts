// Boot assessment for extensions (issue 28 item 5) end to end on a node root: real images in a
// real docker-registry, a catalog over real HTTPS, `extctl boot` linking and the real
// systemd-sysext merging at each simulated boot (unmerge, then boot: what a reboot does to /run).
// upgrade --tries 1; a boot spends the try; no bless (boot-complete.target not reached); the next
// boot falls back to the previous version. Then a new version is blessed and kept across boots.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { catalogFixture, ok } from "../helpers/catalog-fixture.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempNodeRoot } from "../helpers/tmp.js";

const PEERS = ["docker-registry", "mksquashfs", "openssl", "systemd-sysext", "mount", "umount"];

interface BootJson {
  assessment: {
    name: string;
    action: string;
    version?: string;
    triesLeft?: number;
    from?: string;
    to?: string;
    reason?: string;
  }[];
}
interface VersionsJson {
  current: string;
  pending?: { version: string; triesLeft: number } | null;
  blessed?: string;
  bootFallbacks: { from: string; to: string; reason: string }[];
  installed: { version: string; pending: boolean; blessed: boolean; triesLeft?: number }[];
}

test("upgrade --tries 1: a boot that is never blessed is followed by one on the previous version; a blessed version stays across boots", async (t) => {
  if (!requirePeers(t, PEERS, { root: true })) return;
  const f = await catalogFixture(t);
  const v = {
    "1.0.0": await f.publishVersion("hello", "1.0.0"),
    "2.0.0": await f.publishVersion("hello", "2.0.0"),
    "3.0.0": await f.publishVersion("hello", "3.0.0"),
  };
  const offer = (...tags: (keyof typeof v)[]) =>
    f.catalogJson({
      hello: {
        latest: tags.at(-1) as string,
        tags: tags.map((tag) => ({ version: tag, published: v[tag] })),
      },
    });
  const url = f.serveCatalog("releases.json", offer("1.0.0"));
  const root = await tempNodeRoot(t);
  const work = await tempDir(t);
  const cmdline = path.join(work, "cmdline");
  await writeFile(cmdline, "BOOT_IMAGE=/vmlinuz root=LABEL=COS_ACTIVE ro\n");
  const cli = (...args: string[]) => runExtctl(["--root", root, ...args]);
  const merged = () => readFile(path.join(root, "usr/share/hello/version"), "utf8");
  const versions = async () =>
    jsonOf<VersionsJson>(
      ok(await cli("sysext", "versions", "hello", "--installed", "--json"), "versions"),
    );
  // A reboot: what was merged is gone, then the boot step links and merges again.
  const reboot = async (): Promise<BootJson> => {
    execFileSync("systemd-sysext", ["unmerge", `--root=${root}`]);
    const r = await cli("boot", "--cmdline", cmdline, "--policy", "any", "--json");
    assert.equal(r.code, 0, r.stderr);
    return jsonOf<BootJson>(r);
  };
  ok(await cli("sysext", "install", "hello", "--catalog", url, ...f.net), "install");
  ok(await cli("sysext", "enable", "hello", "--common"), "enable");
  // boot, upgrade and bless keep ROOT/var/lib/prom/extctl.prom current from now on.
  ok(
    await cli(
      "systemd",
      "install",
      "--systemd",
      "252",
      "--extctl",
      "/usr/bin/extctl",
      "--metrics-dir",
      "/var/lib/prom",
    ),
    "systemd install --metrics-dir",
  );
  const prom = path.join(root, "var/lib/prom/extctl.prom");
  const written = async () => {
    assert.equal((await stat(prom)).mode & 0o777, 0o644);
    assert.deepEqual(
      (await readdir(path.dirname(prom))).filter((n) => n !== "extctl.prom"),
      [],
      "no temp file left",
    );
    return readFile(prom, "utf8");
  };
  await reboot();
  assert.equal(await merged(), "1.0.0\n");
  ok(await cli("bless"), "bless 1.0.0 (boot-complete reached)");

  f.server.addFile("releases.json", Buffer.from(offer("1.0.0", "2.0.0")));
  ok(
    await cli("sysext", "upgrade", "hello", "--tries", "1", "--catalog", url, ...f.net),
    "upgrade",
  );
  let state = await versions();
  assert.deepEqual(
    [state.current, state.pending?.version, state.pending?.triesLeft, state.blessed],
    ["2.0.0", "2.0.0", 1, "1.0.0"],
  );

  // Boot 1 spends the one try on 2.0.0; a unit keeps boot-complete.target from being reached, so
  // extctl-bless.service never runs: no `bless` here.
  const tried = await reboot();
  assert.deepEqual(
    tried.assessment.map((a) => [a.name, a.action, a.version, a.triesLeft]),
    [["hello", "try", "2.0.0", 0]],
  );
  assert.equal(await merged(), "2.0.0\n");
  // Boot 2: no tries left, so 1.0.0 is linked and merged instead, and the fallback is recorded.
  const fell = await reboot();
  assert.deepEqual(
    fell.assessment.map((a) => [a.action, a.from, a.to]),
    [["fallback", "2.0.0", "1.0.0"]],
  );
  assert.equal(await merged(), "1.0.0\n", "systemd-sysext merged the previous version's files");
  state = await versions();
  assert.equal(state.current, "1.0.0");
  assert.equal(state.pending, null, "--json prints an unknown key as null");
  assert.deepEqual(
    state.bootFallbacks.map((b) => [b.from, b.to]),
    [["2.0.0", "1.0.0"]],
  );
  assert.match(state.bootFallbacks[0]?.reason ?? "", /not blessed in 1 boot/);
  const metrics = ok(await cli("metrics"), "metrics").stdout;
  assert.match(metrics, /^extctl_extension_boot_fallbacks_total\{kind="sysext",name="hello"\} 1$/m);
  assert.match(metrics, /^extctl_extension_pending\{kind="sysext",name="hello"\} 0$/m);
  assert.match(
    await written(),
    /^extctl_extension_boot_fallbacks_total\{kind="sysext",name="hello"\} 1$/m,
    "boot wrote the textfile",
  );

  // 3.0.0 with one try: it boots, boot-complete is reached and it is blessed; it then stays.
  f.server.addFile("releases.json", Buffer.from(offer("1.0.0", "2.0.0", "3.0.0")));
  ok(
    await cli("sysext", "upgrade", "hello", "--tries", "1", "--catalog", url, ...f.net),
    "upgrade 3",
  );
  assert.match(
    ok(await cli("metrics"), "metrics").stdout,
    /^extctl_extension_pending\{kind="sysext",name="hello"\} 1$/m,
  );
  assert.equal((await reboot()).assessment[0]?.action, "try");
  const blessed = jsonOf<{
    items: { name: string; version: string; action: string; wasPending: boolean }[];
  }>(ok(await cli("bless", "--json"), "bless"));
  assert.deepEqual(
    blessed.items.map((i) => [i.name, i.version, i.action, i.wasPending]),
    [["hello", "3.0.0", "blessed", true]],
  );
  for (let boot = 0; boot < 2; boot++) {
    assert.deepEqual((await reboot()).assessment, []);
    assert.equal(await merged(), "3.0.0\n");
  }
  state = await versions();
  assert.deepEqual([state.current, state.blessed, state.pending], ["3.0.0", "3.0.0", null]);
  assert.ok(state.installed.find((i) => i.version === "3.0.0")?.blessed);
  assert.match(
    ok(await cli("metrics"), "metrics").stdout,
    /^extctl_extension_blessed\{kind="sysext",name="hello"\} 1$/m,
  );
});
