// A Kairos-like node booted for real (issue 17 item 4): a lane root with systemd 257 or 262 as
// PID 1 under systemd-nspawn, preseeded from outside with `extctl --root` as an installer would,
// running a scenario inside and powering off (test/helpers/booted-node.ts). What is checked:
// the boot profile's images and common's merged by the real systemd-sysext.service and
// systemd-confext.service; enable/disable/remove --now through `systemctl restart` with
// `extctl status` agreeing with `systemd-sysext status`; a reboot; trusted boot refusing unsigned
// images (extctl's boot, and systemd-sysext through the drop-in); a broken store; an extension
// with --service-reload. No device-mapper here: merges use bare images (`build --no-verity`)
// under the `any` policy, refusals the trusted one. Runs from the host only (it drives nspawn on
// the lane roots); EXTCTL_NODE_LANES=257 (say) picks lanes, default 257 and 262.
import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { chmod, mkdir, rm, stat, symlink, truncate, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import path from "node:path";
import {
  BootedNode,
  efiString,
  laneRoot,
  type BootResult,
  type NodeLane,
} from "../helpers/booted-node.js";
import { requirePeers } from "../helpers/peers.js";
import { inLane } from "../helpers/lane.js";
import { catalogFixture, type Published } from "../helpers/catalog-fixture.js";

const LANES = (process.env.EXTCTL_NODE_LANES ?? "257,262")
  .split(",")
  .filter((l): l is NodeLane => l === "257" || l === "262");

const skip = inLane()
  ? "drives systemd-nspawn on the lane roots from the host; runs in the host lane"
  : false;

/** Peers, root and the lane's cached root (a missing one fails under CI, as a missing peer does). */
function ready(t: TestContext, lane: NodeLane): boolean {
  if (!requirePeers(t, ["systemd-nspawn", "journalctl", "systemctl", "mkfs.erofs"], { root: true }))
    return false;
  if (laneRoot(lane)) return true;
  const message = `lane ${lane} is not built (bash scripts/lanes.sh build ${lane})`;
  if (process.env.CI === "true") throw new Error(message);
  t.skip(message);
  return false;
}

type Kind = "sysext" | "confext";

/** systemd-boot's vendor GUID for its Loader* variables. */
const LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

/** A sysext carrying /usr/bin/hello-NAME, or a confext carrying /etc/hello-NAME.conf. */
function helloFiles(kind: Kind, name: string): Record<string, string> {
  return kind === "sysext"
    ? { [`usr/bin/hello-${name}`]: `#!/bin/sh\necho "hello from ${name}"\n` }
    : { [`etc/hello-${name}.conf`]: `greeting=${name}\n` };
}

/** Builds a bare image with `extctl build --no-verity` on the host; returns its path. */
async function build(
  node: BootedNode,
  kind: Kind,
  name: string,
  options: { files?: Record<string, string>; extra?: string[] } = {},
): Promise<string> {
  const tree = path.join(node.scratch, `tree-${kind}-${name}`);
  for (const [rel, content] of Object.entries(options.files ?? helloFiles(kind, name))) {
    const file = path.join(tree, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
    if (rel.includes("bin/")) await chmod(file, 0o755);
  }
  await node.extctlOk([
    "build",
    kind,
    name,
    tree,
    "--no-verity",
    "-o",
    node.scratch,
    ...(options.extra ?? []),
  ]);
  return path.join(node.scratch, `${name}.${kind}.raw`);
}

/** Builds and installs into the node's store from outside (`extctl --root R KIND install`). */
async function install(
  node: BootedNode,
  kind: Kind,
  name: string,
  options: { files?: Record<string, string>; extra?: string[] } = {},
): Promise<void> {
  const image = await build(node, kind, name, options);
  await node.extctlOk([kind, "install", `file://${image}`]);
}

interface SystemdStatusEntry {
  hierarchy: string;
  extensions: string[] | "none";
}

interface ExtctlStatus {
  boot: { states: string[]; profiles: string[] };
  kinds: {
    kind: Kind;
    merged: { hierarchy: string; extensions: string[] }[];
    enabled: Record<string, string[]>;
    linked: string[];
    mismatches: { name: string; problem: string; detail: string }[];
  }[];
}

/** Image names systemd-sysext/confext status says are merged. */
function systemdMerged(boot: BootResult, snapshot: string, kind: Kind): string[] {
  const entries = boot.json<SystemdStatusEntry[]>(`${snapshot}.${kind}-status`);
  return [...new Set(entries.flatMap((e) => (Array.isArray(e.extensions) ? e.extensions : [])))]
    .sort()
    .filter(Boolean);
}

/**
 * Asserts that after `snapshot` systemd has merged exactly `expected` (systemd image names) of
 * this kind, that `extctl status` says the same per hierarchy, and that its mismatches are
 * exactly `mismatches` ([file name, problem] pairs; default none).
 */
function assertMerged(
  boot: BootResult,
  snapshot: string,
  kind: Kind,
  expected: string[],
  mismatches: [string, string][] = [],
): void {
  const why = () => boot.diagnostics();
  assert.deepEqual(
    systemdMerged(boot, snapshot, kind),
    [...expected].sort(),
    `${snapshot}: ${why()}`,
  );
  const status = boot.json<ExtctlStatus>(`${snapshot}.extctl-status`);
  const mine = status.kinds.find((k) => k.kind === kind);
  assert.ok(mine, `${snapshot}: extctl status has no ${kind}`);
  const systemdByHierarchy = boot
    .json<SystemdStatusEntry[]>(`${snapshot}.${kind}-status`)
    // 257 says "none" for a hierarchy with nothing merged, 262 an empty list.
    .filter((e) => Array.isArray(e.extensions) && e.extensions.length > 0)
    .map((e) => [e.hierarchy, [...(e.extensions as string[])].sort()]);
  assert.deepEqual(
    mine.merged.map((h) => [h.hierarchy, [...h.extensions].sort()]),
    systemdByHierarchy,
    `${snapshot}: extctl status and systemd-${kind} status disagree: ${why()}`,
  );
  assert.deepEqual(
    mine.mismatches.map((m) => [m.name, m.problem]).sort(),
    [...mismatches].sort(),
    `${snapshot}: ${kind} mismatches: ${why()}`,
  );
}

function assertReachedMultiUser(boot: BootResult): void {
  assert.equal(boot.timedOut, false, `the node did not power off in time: ${boot.diagnostics()}`);
  assert.ok(boot.finished, `the scenario did not finish: ${boot.diagnostics()}`);
  assert.equal(boot.step("boot.multi-user").out.trim(), "active", boot.diagnostics());
}

function assertStep(boot: BootResult, name: string, rc = 0): string {
  const s = boot.step(name);
  assert.equal(s.rc, rc, `step ${name}: rc ${s.rc}: ${s.out}${s.err}\n${boot.diagnostics()}`);
  return s.out;
}

/**
 * `systemd-sysext status` and `systemd-confext status` in a login shell started with an empty
 * environment, as an operator's ssh session gets one: what /etc/profile.d gives it, nothing more.
 */
const LOGIN_SHELL = [
  'login() { env -i HOME=/root TERM=dumb PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -l -c "$1"; }',
  "step login.sysext-status login 'systemd-sysext status --json=short'",
  "step login.confext-status login 'systemd-confext status --json=short'",
  "",
].join("\n");

/**
 * The node's own catalog for one extension: a file under its root (/etc/extctl/catalogs names
 * it), the registry on the host's loopback (nspawn shares the network) reached over plain http
 * as registries.conf says. Returns a function that rewrites the catalog to offer `tags`.
 */
async function nodeCatalog(
  node: BootedNode,
  f: Awaited<ReturnType<typeof catalogFixture>>,
  name: string,
): Promise<(tags: Published[]) => Promise<void>> {
  for (const dir of ["/srv", "/etc/extctl", "/etc/containers"])
    await mkdir(node.host(dir), { recursive: true });
  await writeFile(node.host("/etc/extctl/catalogs"), "file:///srv/catalog.json\n");
  await writeFile(
    node.host("/etc/containers/registries.conf"),
    `[[registry]]\nlocation = "${f.registry.host}"\ninsecure = true\n`,
  );
  return (tags) =>
    writeFile(
      node.host("/srv/catalog.json"),
      f.catalogJson({
        [name]: {
          latest: (tags.at(-1) as Published).version,
          tags: tags.map((p) => ({ version: p.version, published: p })),
        },
      }),
    );
}

const PROFILE_BOOTS: { cmdline: string; profile: string | undefined }[] = [
  { cmdline: "root=LABEL=COS_ACTIVE", profile: "active" },
  { cmdline: "root=LABEL=COS_PASSIVE", profile: "passive" },
  { cmdline: "root=LABEL=COS_RECOVERY", profile: "recovery" },
  // autoreset counts as recovery (spec/kairos.md "ours" 5); a live boot links nothing at all.
  { cmdline: "root=LABEL=COS_RECOVERY kairos.reset", profile: "recovery" },
  { cmdline: "root=live:CDLABEL=KAIROS", profile: undefined },
];

for (const lane of LANES) {
  describe(`booted node, systemd ${lane}`, { skip }, () => {
    test("each boot profile merges its images and common's at boot (sysext and confext)", async (t) => {
      if (!ready(t, lane)) return;
      const node = await BootedNode.create(t, lane);
      for (const p of ["active", "passive", "recovery", "common"]) {
        await install(node, "sysext", p);
        await node.extctlOk(["sysext", "enable", p, `--${p}`]);
      }
      for (const p of ["active", "common"]) {
        await install(node, "confext", `c${p}`);
        await node.extctlOk(["confext", "enable", `c${p}`, `--${p}`]);
      }
      await node.installUnits({ policy: "any" });
      for (const { cmdline, profile } of PROFILE_BOOTS) {
        const started = Date.now();
        const boot = await node.boot({
          cmdline: cmdline.split(" "),
          scenario: `step run-profile hello-${profile ?? "none"}\nstep run-common hello-common\nstep conf sh -c 'cat /etc/hello-c*.conf'\n${LOGIN_SHELL}`,
        });
        t.diagnostic(`${cmdline}: booted and powered off in ${Date.now() - started} ms`);
        assertReachedMultiUser(boot);
        if (profile === undefined) {
          // Nothing is linked, not even common's; status says what would load on another boot.
          assertMerged(boot, "boot", "sysext", [], [["common.sysext.raw", "enabled-not-linked"]]);
          assertMerged(
            boot,
            "boot",
            "confext",
            [],
            [["ccommon.confext.raw", "enabled-not-linked"]],
          );
          assertStep(boot, "run-common", 127);
          continue;
        }
        assertMerged(boot, "boot", "sysext", [profile, "common"]);
        // An operator's login shell (nothing from the units' environment) sees the same merge:
        // /etc/profile.d/systemd-sysext.sh and -confext.sh from `systemd install` export the
        // hierarchies the units merge with.
        assert.deepEqual(
          systemdMerged(boot, "login", "sysext"),
          [profile, "common"].sort(),
          `a login shell's systemd-sysext status: ${boot.diagnostics()}`,
        );
        assert.deepEqual(
          systemdMerged(boot, "login", "confext"),
          profile === "active" ? ["cactive", "ccommon"] : ["ccommon"],
          `a login shell's systemd-confext status: ${boot.diagnostics()}`,
        );
        assertMerged(
          boot,
          "boot",
          "confext",
          profile === "active" ? ["cactive", "ccommon"] : ["ccommon"],
        );
        assert.equal(assertStep(boot, "run-profile").trim(), `hello from ${profile}`);
        assert.equal(assertStep(boot, "run-common").trim(), "hello from common");
        const conf = assertStep(boot, "conf");
        assert.match(conf, /greeting=ccommon/);
        assert.equal(/greeting=cactive/.test(conf), profile === "active", conf);
        const status = boot.json<ExtctlStatus>("boot.extctl-status");
        assert.deepEqual(status.boot.profiles, [profile], boot.diagnostics());
        assert.match(boot.journal("extctl-boot.service"), /Finished extctl-boot\.service/);
      }
      t.diagnostic(`extctl on the node: ${node.extctlOnNode}`);
    });

    test("a UKI-style boot takes its profile from the loader's EFI variables", async (t) => {
      if (!ready(t, lane)) return;
      const node = await BootedNode.create(t, lane);
      for (const p of ["active", "passive", "common"]) {
        await install(node, "sysext", p);
        await node.extctlOk(["sysext", "enable", p, `--${p}`]);
      }
      // The any policy (Kairos's ignore_signatures): bare images merge even on a UKI boot.
      await node.installUnits({ policy: "any" });
      const cmdline = ["rd.immucore.uki", "console=ttyS0"];
      const partUuid = efiString("6d4e6a3c-5b21-4c2f-9a57-0f1e2d3c4b5a");
      const fromDisk = await node.boot({
        cmdline,
        efivars: {
          [`LoaderDevicePartUUID-${LOADER_GUID}`]: partUuid,
          [`LoaderEntrySelected-${LOADER_GUID}`]: efiString("passive.conf"),
        },
        scenario: "step sentinels ls /run/cos\n",
      });
      assertReachedMultiUser(fromDisk);
      assertMerged(fromDisk, "boot", "sysext", ["passive", "common"]);
      const status = fromDisk.json<ExtctlStatus & { boot: { uki: boolean } }>("boot.extctl-status");
      assert.deepEqual(status.boot.profiles, ["passive"], fromDisk.diagnostics());
      assert.equal(status.boot.uki, true);
      assert.match(assertStep(fromDisk, "sentinels"), /uki_boot_mode/);
      assert.match(
        fromDisk.journal("extctl-boot.service"),
        /LoaderEntrySelected is "passive\.conf"/,
      );

      // No LoaderDevicePartUUID: booted from removable media, so nothing at all is linked.
      const fromUsb = await node.boot({
        cmdline,
        efivars: { [`LoaderEntrySelected-${LOADER_GUID}`]: efiString("active.conf") },
        scenario: "step sentinels ls /run/cos\n",
      });
      assertReachedMultiUser(fromUsb);
      assertMerged(fromUsb, "boot", "sysext", [], [["common.sysext.raw", "enabled-not-linked"]]);
      assert.match(assertStep(fromUsb, "sentinels"), /livecd_mode/);
    });

    test("enable, disable and remove --now inside the node, and a reboot keeps what --now enabled", async (t) => {
      if (!ready(t, lane)) return;
      const node = await BootedNode.create(t, lane);
      for (const n of ["a", "b", "c"]) await install(node, "sysext", n);
      for (const n of ["x", "y", "z"]) await install(node, "confext", n);
      await node.extctlOk(["sysext", "enable", "a", "--active"]);
      await node.extctlOk(["sysext", "enable", "b", "--common"]);
      await node.installUnits({ policy: "any" });
      const cmdline = ["root=LABEL=COS_ACTIVE"];
      // The first step is issue 17's report: on a booted 257, enable --now called systemd's
      // merge of a, b and c "linked but not merged" and undid its link (extctl read only /usr's
      // marker; the drop-in's hierarchies put them in /usr/bin, /usr/lib, ...).
      const live = await node.boot({
        cmdline,
        scenario: `
step enable-c extctl sysext enable c --active --now
snapshot s1
step run-c hello-c
step disable-a extctl sysext disable a --active --now
snapshot s2
step run-a hello-a
step remove-b extctl sysext remove b --now
snapshot s3
step enable-x extctl confext enable x --active --now
snapshot s4
step conf-x cat /etc/hello-x.conf
step disable-x extctl confext disable x --active --now
snapshot s5
step enable-y extctl confext enable y --common --now
step remove-y extctl confext remove y --now
step enable-z extctl confext enable z --common --now
snapshot s6
`,
      });
      assertReachedMultiUser(live);
      assertMerged(live, "boot", "sysext", ["a", "b"]);
      assertStep(live, "enable-c");
      assertMerged(live, "s1", "sysext", ["a", "b", "c"]);
      assert.equal(assertStep(live, "run-c").trim(), "hello from c");
      assertStep(live, "disable-a");
      assertMerged(live, "s2", "sysext", ["b", "c"]);
      assertStep(live, "run-a", 127);
      assertStep(live, "remove-b");
      assertMerged(live, "s3", "sysext", ["c"]);
      assertStep(live, "enable-x");
      assertMerged(live, "s4", "confext", ["x"]);
      assert.equal(assertStep(live, "conf-x").trim(), "greeting=x");
      assertStep(live, "disable-x");
      assertMerged(live, "s5", "confext", []);
      assertStep(live, "enable-y");
      assertStep(live, "remove-y");
      assertStep(live, "enable-z");
      assertMerged(live, "s6", "confext", ["z"]);
      assertMerged(live, "s6", "sysext", ["c"]);
      // Each --now went through systemd's own unit, not a direct systemd-sysext call.
      const restarts = live
        .journal("systemd-sysext.service")
        .match(/Starting systemd-sysext\.service/g);
      assert.ok((restarts?.length ?? 0) >= 4, live.journal("systemd-sysext.service"));

      const again = await node.boot({
        cmdline,
        scenario:
          "step run-c hello-c\nstep ls-store ls /var/lib/kairos/extensions /var/lib/kairos/confexts\n",
      });
      assertReachedMultiUser(again);
      assertMerged(again, "boot", "sysext", ["c"]);
      assertMerged(again, "boot", "confext", ["z"]);
      assert.equal(assertStep(again, "run-c").trim(), "hello from c");
      const status = again.json<ExtctlStatus>("boot.extctl-status");
      const sysext = status.kinds.find((k) => k.kind === "sysext");
      assert.deepEqual(sysext?.enabled.active, ["c.sysext.raw"]);
      assert.deepEqual(sysext?.enabled.common, []);
      const store = assertStep(again, "ls-store");
      assert.match(store, /a\.sysext\.raw/, "disable keeps the image");
      assert.doesNotMatch(store, /b\.sysext\.raw|y\.confext\.raw/, "remove deleted the images");
    });

    test("trusted boot: extctl's boot and systemd-sysext's drop-in both refuse unsigned images", async (t) => {
      if (!ready(t, lane)) return;
      const node = await BootedNode.create(t, lane);
      await install(node, "sysext", "unsigned");
      await install(node, "sysext", "sideloaded");
      await node.extctlOk(["sysext", "enable", "unsigned", "--active"]);
      await node.installUnits({ policy: "trusted" });
      const boot = await node.boot({
        cmdline: ["root=LABEL=COS_ACTIVE"],
        scenario: `
mkdir -p /run/extensions
step sideload ln -s /var/lib/kairos/extensions/sideloaded.sysext.raw /run/extensions/sideloaded.sysext.raw
step restart systemctl restart systemd-sysext.service
snapshot s1
step run hello-sideloaded
`,
      });
      assertReachedMultiUser(boot);
      assertMerged(boot, "boot", "sysext", [], [["unsigned.sysext.raw", "enabled-not-linked"]]);
      const bootLog = boot.journal("extctl-boot.service");
      assert.match(bootLog, /unsigned\.sysext\.raw/, boot.diagnostics());
      assert.match(bootLog, /sign|polic/i, `extctl boot says why: ${bootLog}`);
      // systemd-sysext itself refuses the image linked behind extctl's back, by the drop-in's policy.
      assert.notEqual(boot.step("restart").rc, 0, boot.diagnostics());
      assertMerged(
        boot,
        "s1",
        "sysext",
        [],
        [
          ["unsigned.sysext.raw", "enabled-not-linked"],
          ["sideloaded.sysext.raw", "linked-not-merged"],
        ],
      );
      assertStep(boot, "run", 127);
      // extctl status says why, as systemd-sysext's drop-in policy sees it.
      const side = boot
        .json<ExtctlStatus>("s1.extctl-status")
        .kinds.find((k) => k.kind === "sysext")
        ?.mismatches.find((m) => m.name === "sideloaded.sysext.raw");
      assert.match(
        side?.detail ?? "",
        /has no dm-verity data.*the policy "signed" refuses it \(the policy systemd-sysext runs with, from \/etc\/systemd\/system\/systemd-sysext\.service\.d\//,
        boot.diagnostics(),
      );
      const sysextLog = boot.journal("systemd-sysext.service");
      assert.match(sysextLog, /sideloaded/, sysextLog);
      assert.match(sysextLog, /polic/i, `systemd-sysext says the policy refused it: ${sysextLog}`);
      for (const line of [...bootLog.split("\n"), ...sysextLog.split("\n")])
        if (/unsigned|sideloaded/.test(line) && /sign|polic/i.test(line)) t.diagnostic(line);
    });

    test("a broken store never stops the node reaching multi-user, and the journal says why", async (t) => {
      if (!ready(t, lane)) return;
      const node = await BootedNode.create(t, lane);
      await install(node, "sysext", "good");
      // Big enough that a third of it still holds a whole superblock: a download cut short.
      await install(node, "sysext", "cut", {
        files: {
          "usr/bin/hello-cut": "#!/bin/sh\necho cut\n",
          "usr/lib/cut/blob": randomBytes(256 * 1024).toString("base64"),
        },
      });
      await install(node, "confext", "conf");
      await node.extctlOk(["sysext", "enable", "good", "--common"]);
      await node.extctlOk(["sysext", "enable", "cut", "--active"]);
      await node.extctlOk(["confext", "enable", "conf", "--common"]);
      await node.installUnits({ policy: "any" });
      const image = node.host("/var/lib/kairos/extensions/cut.sysext.raw");
      await truncate(image, Math.floor((await stat(image)).size / 3));
      const cmdline = ["root=LABEL=COS_ACTIVE"];

      // A truncated image: extctl's boot skips it and says why, and the others still merge
      // (systemd would merge none of them with it linked: systemd issue 32762).
      const cut = await node.boot({ cmdline, scenario: "step run hello-good\n" });
      assertReachedMultiUser(cut);
      const bootLog = cut.journal("extctl-boot.service");
      assert.match(
        bootLog,
        /skipping sysext cut\.sysext\.raw \(active\): .*claims \d+ blocks of \d+ bytes but the image has only \d+ bytes/,
        cut.diagnostics(),
      );
      assert.equal(assertStep(cut, "run").trim(), "hello from good", cut.diagnostics());
      assertMerged(cut, "boot", "sysext", ["good"], [["cut.sysext.raw", "enabled-not-linked"]]);
      assertMerged(cut, "boot", "confext", ["conf"]);

      // A file where the sysext store should be.
      await rm(node.host("/var/lib/kairos/extensions"), { recursive: true });
      await writeFile(node.host("/var/lib/kairos/extensions"), "not a directory\n");
      const fileStore = await node.boot({ cmdline, scenario: "step status extctl status\n" });
      assertReachedMultiUser(fileStore);
      const log = fileStore.journal("extctl-boot.service");
      assert.match(log, /\/var\/lib\/kairos\/extensions/, fileStore.diagnostics());
      assert.match(log, /not a directory|ENOTDIR/i, fileStore.diagnostics());
      assertMerged(fileStore, "boot", "confext", ["conf"]);
    });

    test("an extension built with --service-reload: its unit starts after enable --now", async (t) => {
      if (!ready(t, lane)) return;
      const node = await BootedNode.create(t, lane);
      const unit = (name: string) => `[Unit]
Description=hello from the ${name} extension

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo ${name} ran > /run/${name}-ran'
`;
      await install(node, "sysext", "svc", {
        files: { "usr/lib/systemd/system/extctl-svc-hello.service": unit("svc") },
        extra: ["--service-reload"],
      });
      // The same without --service-reload, to tell systemd-sysext's reload from any other.
      await install(node, "sysext", "plain", {
        files: { "usr/lib/systemd/system/extctl-plain-hello.service": unit("plain") },
      });
      await node.installUnits({ policy: "any" });
      const boot = await node.boot({
        cmdline: ["root=LABEL=COS_ACTIVE"],
        scenario: `
reloads() { journalctl --sync; journalctl -b -o cat -u init.scope | grep -c '^Reloading\\.\\.\\.$' || true; }
step before systemctl show -P LoadState extctl-svc-hello.service
step reloads-0 reloads
step plain-enable extctl sysext enable plain --common --now
step reloads-1 reloads
step svc-enable extctl sysext enable svc --common --now
step reloads-2 reloads
step svc-start systemctl start extctl-svc-hello.service
step svc-ran cat /run/svc-ran
snapshot s1
`,
      });
      assertReachedMultiUser(boot);
      assert.equal(assertStep(boot, "before").trim(), "not-found");
      assertStep(boot, "plain-enable");
      assertStep(boot, "svc-enable");
      assertStep(boot, "svc-start");
      assert.equal(assertStep(boot, "svc-ran").trim(), "svc ran");
      assertMerged(boot, "s1", "sysext", ["plain", "svc"]);
      // EXTENSION_RELOAD_MANAGER=1: systemd-sysext had the manager reload during svc's merge
      // only; plain's merge (no --service-reload) did not.
      const count = (step: string) => Number(assertStep(boot, step).trim());
      t.diagnostic(
        `manager reloads: ${count("reloads-0")}, ${count("reloads-1")}, ${count("reloads-2")}`,
      );
      assert.equal(count("reloads-1"), count("reloads-0"), boot.diagnostics());
      assert.ok(count("reloads-2") > count("reloads-1"), boot.diagnostics());
    });

    test("systemd install --auto-upgrade: the upgrade timer is enabled and waiting after boot", async (t) => {
      if (!ready(t, lane)) return;
      const node = await BootedNode.create(t, lane);
      await node.extctlOk([
        "systemd",
        "install",
        "--policy=any",
        "--auto-upgrade",
        "--on-calendar",
        "*-*-* 04:00:00",
      ]);
      const boot = await node.boot({
        cmdline: ["root=LABEL=COS_ACTIVE"],
        scenario: `
step enabled systemctl is-enabled extctl-upgrade.timer
step active systemctl is-active extctl-upgrade.timer
step calendar systemctl show -P TimersCalendar extctl-upgrade.timer
step timers systemctl list-timers --all --no-pager extctl-upgrade.timer
step service systemctl show -P LoadState,UnitFileState extctl-upgrade.service
`,
      });
      assertReachedMultiUser(boot);
      assert.equal(assertStep(boot, "enabled").trim(), "enabled");
      assert.equal(assertStep(boot, "active").trim(), "active");
      assert.match(assertStep(boot, "calendar"), /OnCalendar=\*-\*-\* 04:00:00/);
      const timers = assertStep(boot, "timers");
      assert.match(timers, /extctl-upgrade\.timer\s+extctl-upgrade\.service/, timers);
      assert.match(timers, /1 timers? listed/, timers);
      // The service is started by the timer only: loaded, and static (no [Install] of its own).
      assert.deepEqual(assertStep(boot, "service").trim().split("\n"), ["loaded", "static"]);
    });

    test("the upgrade timer fires on the booted node: an extension installed by name moves to the catalog's newer version and is merged", async (t) => {
      if (!ready(t, lane)) return;
      if (!requirePeers(t, ["docker-registry", "mksquashfs"], { root: true })) return;
      const node = await BootedNode.create(t, lane);
      const f = await catalogFixture(t);
      const v1 = await f.publishVersion("timed", "1.0.0");
      const v2 = await f.publishVersion("timed", "1.1.0");
      const writeCatalog = await nodeCatalog(node, f, "timed");
      await writeCatalog([v1]);
      await node.extctlOk(["sysext", "install", "timed"]);
      await node.extctlOk(["sysext", "enable", "timed", "--common"]);
      await writeCatalog([v1, v2]);
      await node.extctlOk([
        "systemd",
        "install",
        "--policy=any",
        "--auto-upgrade",
        "--on-calendar",
        "*:*:0/5",
      ]);
      // The one test-only change: no hour of random delay, so the timer fires within seconds.
      await mkdir(node.host("/etc/systemd/system/extctl-upgrade.timer.d"), { recursive: true });
      await writeFile(
        node.host("/etc/systemd/system/extctl-upgrade.timer.d/now.conf"),
        "[Timer]\nRandomizedDelaySec=0\nAccuracySec=1s\n",
      );
      const boot = await node.boot({
        cmdline: ["root=LABEL=COS_ACTIVE"],
        timeoutMs: 240_000,
        scenario: `
step before cat /usr/share/timed/version
step waited timeout 120 sh -c 'until [ "$(cat /usr/share/timed/version 2>/dev/null)" = 1.1.0 ]; do sleep 1; done'
step after cat /usr/share/timed/version
step service systemctl show -P Result,ExecMainStatus extctl-upgrade.service
step triggered sh -c 'journalctl --sync; journalctl -b -o cat -u extctl-upgrade.service'
step versions extctl sysext versions timed --json
snapshot s1
`,
      });
      assertReachedMultiUser(boot);
      // The timer fires every 5 s from boot and the upgrade takes well under a second, so it may
      // have run before the scenario's first step: what proves the move from 1.0.0 is the
      // service's journal line below, not this read.
      assert.ok(["1.0.0", "1.1.0"].includes(assertStep(boot, "before").trim()), boot.diagnostics());
      assertStep(boot, "waited");
      assert.equal(assertStep(boot, "after").trim(), "1.1.0");
      // upgrade exits 3 for the confext line (nothing installed by name): SuccessExitStatus.
      assert.equal(
        assertStep(boot, "service").trim().split("\n")[0],
        "success",
        boot.diagnostics(),
      );
      assert.match(
        assertStep(boot, "triggered"),
        /timed: upgraded 1\.0\.0 -> 1\.1\.0/,
        boot.diagnostics(),
      );
      const versions = boot.json<{ current?: string }>("versions");
      assert.equal(versions.current, "1.1.0");
      assertMerged(boot, "s1", "sysext", ["timed"]);
    });

    test("boot assessment: a version upgraded with --tries 1 whose boot never reaches boot-complete.target gives way to the previous one; a blessed version stays", async (t) => {
      if (!ready(t, lane)) return;
      if (!requirePeers(t, ["docker-registry", "mksquashfs"], { root: true })) return;
      const node = await BootedNode.create(t, lane);
      const f = await catalogFixture(t);
      const v1 = await f.publishVersion("assessed", "1.0.0");
      const v2 = await f.publishVersion("assessed", "2.0.0");
      const v3 = await f.publishVersion("assessed", "3.0.0");
      const writeCatalog = await nodeCatalog(node, f, "assessed");
      await writeCatalog([v1]);
      await node.extctlOk(["sysext", "install", "assessed"]);
      await node.extctlOk(["sysext", "enable", "assessed", "--common"]);
      await node.extctlOk(["systemd", "install", "--policy=any"]);
      // A unit the boot needs to count as good, failing: boot-complete.target is never reached,
      // so extctl-bless.service (Requires= and After= it) never runs.
      const unhealthy = "/etc/systemd/system/extctl-test-unhealthy.service";
      const requires = "/etc/systemd/system/boot-complete.target.requires";
      await writeFile(
        node.host(unhealthy),
        "[Unit]\nDescription=a check the node fails\nBefore=boot-complete.target\n\n[Service]\nType=oneshot\nExecStart=/bin/false\n",
      );
      await mkdir(node.host(requires), { recursive: true });
      await symlink(unhealthy, node.host(`${requires}/extctl-test-unhealthy.service`));

      interface Versions {
        current?: string;
        pending?: { version: string; triesLeft: number } | null;
        blessed?: string | null;
        bootFallbacks: { from: string; to: string }[];
      }
      // The scenario waits for the boot's last jobs (bless, or its failed dependency) to settle.
      const scenario = `
step settle timeout 60 sh -c 'while [ -n "$(systemctl list-jobs --no-legend extctl-bless.service boot-complete.target extctl-test-unhealthy.service)" ]; do sleep 1; done'
step version cat /usr/share/assessed/version
step complete systemctl is-active boot-complete.target
step bless systemctl show -P Result extctl-bless.service
step versions extctl sysext versions assessed --installed --json
snapshot s
`;
      const boot = async (what: string) => {
        const started = Date.now();
        const b = await node.boot({ cmdline: ["root=LABEL=COS_ACTIVE"], scenario });
        t.diagnostic(`${what}: booted and powered off in ${Date.now() - started} ms`);
        assertReachedMultiUser(b);
        assertStep(b, "settle");
        return {
          b,
          version: assertStep(b, "version").trim(),
          complete: b.step("complete").out.trim(),
          versions: b.json<Versions>("versions"),
        };
      };

      await writeCatalog([v1, v2]);
      await node.extctlOk(["sysext", "upgrade", "assessed", "--tries", "1"]);
      // Boot 1 tries 2.0.0 and spends its one try; the boot is never complete, nothing blessed.
      const tried = await boot("boot 1 (2.0.0 on trial)");
      assert.equal(tried.version, "2.0.0", tried.b.diagnostics());
      assert.notEqual(tried.complete, "active", tried.b.diagnostics());
      assert.deepEqual(
        [tried.versions.pending?.version, tried.versions.pending?.triesLeft],
        ["2.0.0", 0],
        tried.b.diagnostics(),
      );
      // Boot 2: no tries left, so extctl's boot links 1.0.0 and systemd merges it.
      const fell = await boot("boot 2 (falls back)");
      assert.equal(fell.version, "1.0.0", fell.b.diagnostics());
      assertMerged(fell.b, "s", "sysext", ["assessed"]);
      assert.deepEqual(
        fell.versions.bootFallbacks.map((x) => [x.from, x.to]),
        [["2.0.0", "1.0.0"]],
        fell.b.diagnostics(),
      );

      // The node healthy again, a newer version: boot-complete.target is reached and blessed.
      await rm(node.host(`${requires}/extctl-test-unhealthy.service`));
      await writeCatalog([v1, v2, v3]);
      await node.extctlOk(["sysext", "upgrade", "assessed", "--tries", "1"]);
      const good = await boot("boot 3 (3.0.0 reaches boot-complete)");
      assert.equal(good.version, "3.0.0", good.b.diagnostics());
      assert.equal(good.complete, "active", good.b.diagnostics());
      assert.equal(assertStep(good.b, "bless").trim(), "success", good.b.diagnostics());
      assert.equal(good.versions.blessed, "3.0.0", good.b.diagnostics());
      assert.equal(good.versions.pending ?? null, null, good.b.diagnostics());
      // Blessed, it stays across a reboot with no tries counted.
      const kept = await boot("boot 4 (3.0.0 kept)");
      assert.equal(kept.version, "3.0.0", kept.b.diagnostics());
      assert.equal(kept.versions.pending ?? null, null, kept.b.diagnostics());
      assert.equal(kept.versions.bootFallbacks.length, 1, kept.b.diagnostics());
    });
  });
}
