// `extctl systemd install` against the real `systemd-analyze verify` (systemd 252) on a root that
// holds systemd's own systemd-sysext.service: the written units and drop-ins verify, a broken
// variant fails the same check, and --uninstall removes exactly what install wrote.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmod,
  copyFile,
  mkdir,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import { requirePeers } from "../helpers/peers.js";
import { tempRoot } from "../helpers/tmp.js";
import { runExtctl } from "../helpers/cli.js";

const CONFEXT_UNIT = `[Unit]
Description=Merge Configuration Extension Images into /etc/
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=systemd-confext refresh
ExecStop=systemd-confext unmerge

[Install]
WantedBy=sysinit.target
`;

/** A root with systemd's units and executables where the units expect them. */
async function systemdRoot(t: Parameters<typeof tempRoot>[0]): Promise<string> {
  const dir = await tempRoot(t);
  await mkdir(path.join(dir, "usr/lib/systemd/system"), { recursive: true });
  await copyFile(
    "/lib/systemd/system/systemd-sysext.service",
    path.join(dir, "usr/lib/systemd/system/systemd-sysext.service"),
  );
  await writeFile(path.join(dir, "usr/lib/systemd/system/systemd-confext.service"), CONFEXT_UNIT);
  for (const bin of ["systemd-sysext", "systemd-confext", "extctl"]) {
    await writeFile(path.join(dir, "usr/bin", bin), "#!/bin/sh\nexit 0\n");
    await chmod(path.join(dir, "usr/bin", bin), 0o755);
  }
  return dir;
}

function verify(
  root: string,
  units = ["extctl-boot.service", "systemd-sysext.service", "systemd-confext.service"],
): { code: number; stderr: string } {
  const r = spawnSync("systemd-analyze", ["verify", "--man=no", `--root=${root}`, ...units], {
    encoding: "utf8",
  });
  return { code: r.status ?? 128, stderr: r.stderr };
}

async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true }))
    out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  // The run lock directory is extctl's, not a unit install's.
  return out.filter((p) => !p.startsWith("run/lock")).sort();
}

test("installed units and drop-ins pass systemd-analyze verify; broken ones fail it", async (t) => {
  if (!requirePeers(t, ["systemd-analyze"], { root: true })) return;
  const root = await systemdRoot(t);
  const bare = verify(root, ["systemd-sysext.service", "systemd-confext.service"]);
  assert.equal(bare.code, 0, `systemd's own units verify before install: ${bare.stderr}`);

  const r = await runExtctl([
    "--root",
    root,
    "systemd",
    "install",
    "--systemd",
    "255",
    "--no-trusted",
    "--extctl",
    "/usr/bin/extctl",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { changed: string[] };
  assert.deepEqual(result.changed.sort(), [
    "/etc/profile.d/systemd-confext.sh",
    "/etc/profile.d/systemd-sysext.sh",
    "/etc/systemd/system/extctl-bless.service",
    "/etc/systemd/system/extctl-boot.service",
    "/etc/systemd/system/multi-user.target.wants/extctl-bless.service",
    "/etc/systemd/system/sysinit.target.wants/extctl-boot.service",
    "/etc/systemd/system/sysinit.target.wants/systemd-confext.service",
    "/etc/systemd/system/sysinit.target.wants/systemd-sysext.service",
    "/etc/systemd/system/systemd-confext.service.d/10-extctl-image-policy.conf",
    "/etc/systemd/system/systemd-sysext.service.d/10-extctl-image-policy.conf",
  ]);
  const ok = verify(root);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stderr.trim(), "", "no warnings about any of the units");

  const unit = await readFile(path.join(root, "etc/systemd/system/extctl-boot.service"), "utf8");
  assert.match(unit, /^Before=systemd-sysext\.service systemd-confext\.service/m);
  assert.match(unit, /^ExecStart=\/usr\/bin\/extctl boot --no-refresh$/m);
  const sysext = await readFile(
    path.join(root, "etc/systemd/system/systemd-sysext.service.d/10-extctl-image-policy.conf"),
    "utf8",
  );
  assert.match(sysext, /^ExecStart=\n/m);
  assert.match(
    sysext,
    /^ExecStart=\/usr\/bin\/systemd-sysext refresh --image-policy=root=verity\+absent:usr=verity\+absent$/m,
  );
  assert.match(sysext, /SYSTEMD_SYSEXT_HIERARCHIES=\/usr\/bin:[^"]*:\/opt"/);
  assert.doesNotMatch(sysext, /\/usr\/local/);
  // A shell that reads the profile script gets exactly the unit's list (a real sh sources it).
  const unitList = /SYSTEMD_SYSEXT_HIERARCHIES=([^"]*)"/.exec(sysext)?.[1];
  const sourced = spawnSync(
    "sh",
    [
      "-c",
      '. "$1" && printf %s "$SYSTEMD_SYSEXT_HIERARCHIES"',
      "sh",
      path.join(root, "etc/profile.d/systemd-sysext.sh"),
    ],
    { encoding: "utf8", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
  );
  assert.equal(sourced.status, 0, sourced.stderr);
  assert.equal(sourced.stdout, unitList);
  assert.equal(
    (await stat(path.join(root, "etc/profile.d/systemd-sysext.sh"))).mode & 0o777,
    0o644,
  );

  // The same check fails when what the units run is missing: verify really reads them, the
  // drop-ins included (only the drop-in names /usr/bin/systemd-confext).
  await rm(path.join(root, "usr/bin/extctl"));
  await rm(path.join(root, "usr/bin/systemd-confext"));
  const broken = verify(root);
  assert.notEqual(broken.code, 0);
  assert.match(broken.stderr, /extctl-boot\.service: Command \/usr\/bin\/extctl is not executable/);
  assert.match(broken.stderr, /Command \/usr\/bin\/systemd-confext is not executable/);
});

test("trusted boot writes the signed policy; systemd detection from the root", async (t) => {
  if (!requirePeers(t, ["systemd-analyze"], { root: true })) return;
  const root = await systemdRoot(t);
  const lib = path.join(root, "usr/lib/x86_64-linux-gnu/systemd");
  await mkdir(lib, { recursive: true });
  await writeFile(path.join(lib, "libsystemd-shared-256.so"), "");
  await mkdir(path.join(root, "run/cos"), { recursive: true });
  await writeFile(path.join(root, "run/cos/uki_boot_mode"), "");
  const r = await runExtctl(["--root", root, "systemd", "install", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { systemdVersion: number; trusted: boolean };
  assert.equal(result.systemdVersion, 256);
  assert.equal(result.trusted, true);
  const conf = await readFile(
    path.join(root, "etc/systemd/system/systemd-confext.service.d/10-extctl-image-policy.conf"),
    "utf8",
  );
  assert.match(conf, /--image-policy=root=signed\+absent:usr=signed\+absent$/m);
  // Under --root the unit runs the packaged /usr/bin/extctl.
  assert.match(
    await readFile(path.join(root, "etc/systemd/system/extctl-boot.service"), "utf8"),
    /^ExecStart=\/usr\/bin\/extctl boot --no-refresh$/m,
  );
  assert.equal(verify(root).code, 0);
});

test("systemd 252 gets the boot unit only; --uninstall removes exactly what install wrote", async (t) => {
  if (!requirePeers(t, ["systemd-analyze"], { root: true })) return;
  const root = await systemdRoot(t);
  // Someone else's drop-in must survive the uninstall.
  await mkdir(path.join(root, "etc/systemd/system/systemd-sysext.service.d"), { recursive: true });
  await writeFile(
    path.join(root, "etc/systemd/system/systemd-sysext.service.d/50-site.conf"),
    "[Service]\nEnvironment=SITE=1\n",
  );
  const before = await tree(root);

  const old = await runExtctl(["--root", root, "systemd", "install", "--systemd", "252", "--json"]);
  assert.equal(old.code, 0, old.stderr);
  assert.deepEqual((JSON.parse(old.stdout) as { changed: string[] }).changed.sort(), [
    "/etc/systemd/system/extctl-bless.service",
    "/etc/systemd/system/extctl-boot.service",
    "/etc/systemd/system/multi-user.target.wants/extctl-bless.service",
    "/etc/systemd/system/sysinit.target.wants/extctl-boot.service",
    "/etc/systemd/system/sysinit.target.wants/systemd-confext.service",
    "/etc/systemd/system/sysinit.target.wants/systemd-sysext.service",
  ]);
  assert.equal(verify(root).code, 0);

  const again = await runExtctl([
    "--root",
    root,
    "systemd",
    "install",
    "--systemd",
    "252",
    "--json",
  ]);
  assert.deepEqual((JSON.parse(again.stdout) as { changed: string[] }).changed, [], "idempotent");

  await runExtctl(["--root", root, "systemd", "install", "--systemd", "254"]);
  const un = await runExtctl(["--root", root, "systemd", "install", "--uninstall"]);
  assert.equal(un.code, 0, un.stderr);
  assert.deepEqual(await tree(root), before);
});

test("install refuses to overwrite a unit it did not write", async (t) => {
  if (!requirePeers(t, [], { root: true })) return;
  const root = await systemdRoot(t);
  await mkdir(path.join(root, "etc/systemd/system"), { recursive: true });
  await writeFile(path.join(root, "etc/systemd/system/extctl-boot.service"), "[Unit]\n");
  const r = await runExtctl(["--root", root, "systemd", "install", "--systemd", "255"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /was not written by extctl/);
  assert.equal(
    await readFile(path.join(root, "etc/systemd/system/extctl-boot.service"), "utf8"),
    "[Unit]\n",
  );
});

test("a profile script Kairos wrote stays, and the units are still installed", async (t) => {
  if (!requirePeers(t, [], { root: true })) return;
  const root = await systemdRoot(t);
  const kairos = 'export SYSTEMD_SYSEXT_HIERARCHIES="/usr/local/bin:/usr/bin:/opt"\n';
  await mkdir(path.join(root, "etc/profile.d"), { recursive: true });
  await writeFile(path.join(root, "etc/profile.d/systemd-sysext.sh"), kairos);
  const r = await runExtctl(["--root", root, "systemd", "install", "--systemd", "257", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { changed: string[]; notes: string[] };
  assert.ok(result.changed.includes("/etc/profile.d/systemd-confext.sh"));
  assert.ok(
    result.notes.some((n) => /systemd-sysext\.sh exists and was not written by extctl/.test(n)),
  );
  assert.equal(await readFile(path.join(root, "etc/profile.d/systemd-sysext.sh"), "utf8"), kairos);
  const un = await runExtctl(["--root", root, "systemd", "install", "--uninstall"]);
  assert.equal(un.code, 0, un.stderr);
  assert.equal(await readFile(path.join(root, "etc/profile.d/systemd-sysext.sh"), "utf8"), kairos);
  await assert.rejects(stat(path.join(root, "etc/profile.d/systemd-confext.sh")));
});

function systemctl(root: string, ...args: string[]): { code: number; stdout: string } {
  const r = spawnSync("systemctl", [`--root=${root}`, ...args], { encoding: "utf8" });
  return { code: r.status ?? 128, stdout: r.stdout.trim() };
}

async function links(root: string): Promise<Record<string, string>> {
  const wants = path.join(root, "etc/systemd/system/sysinit.target.wants");
  const out: Record<string, string> = {};
  for (const name of await readdir(wants).catch(() => [] as string[]))
    out[name] = await readlink(path.join(wants, name));
  return out;
}

test("install enables systemd-sysext and systemd-confext.service with the links systemctl --root enable makes", async (t) => {
  if (!requirePeers(t, ["systemd-analyze", "systemctl"], { root: true })) return;
  const ours = await systemdRoot(t);
  const theirs = await systemdRoot(t);
  assert.equal(systemctl(ours, "is-enabled", "systemd-sysext.service").stdout, "disabled");

  const r = await runExtctl(["--root", ours, "systemd", "install", "--systemd", "255", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    systemctl(theirs, "enable", "systemd-sysext.service", "systemd-confext.service").code,
    0,
  );
  const made = await links(ours);
  const byTheirs = await links(theirs);
  for (const unit of ["systemd-sysext.service", "systemd-confext.service"]) {
    assert.equal(made[unit], byTheirs[unit], `${unit}: the same link as systemctl enable`);
    assert.equal(systemctl(ours, "is-enabled", unit).stdout, "enabled");
  }
  assert.equal(systemctl(ours, "is-enabled", "extctl-boot.service").stdout, "enabled");
  assert.equal(verify(ours).code, 0);

  // Links that were there before install (kairos-init's) are not install's: uninstall keeps them.
  const r2 = await runExtctl([
    "--root",
    theirs,
    "systemd",
    "install",
    "--systemd",
    "255",
    "--json",
  ]);
  assert.equal(r2.code, 0, r2.stderr);
  const second = JSON.parse(r2.stdout) as { unchanged: string[] };
  assert.ok(
    second.unchanged.includes("/etc/systemd/system/sysinit.target.wants/systemd-sysext.service"),
  );
  assert.equal((await runExtctl(["--root", theirs, "systemd", "install", "--uninstall"])).code, 0);
  assert.equal(systemctl(theirs, "is-enabled", "systemd-sysext.service").stdout, "enabled");
  assert.equal((await runExtctl(["--root", ours, "systemd", "install", "--uninstall"])).code, 0);
  assert.equal(systemctl(ours, "is-enabled", "systemd-sysext.service").stdout, "disabled");
});

test("--policy any|verity|signed|SPEC: each install replaces the drop-ins the last one wrote, and they verify", async (t) => {
  if (!requirePeers(t, ["systemd-analyze"], { root: true })) return;
  const root = await systemdRoot(t);
  const sysextDropIn = path.join(
    root,
    "etc/systemd/system/systemd-sysext.service.d/10-extctl-image-policy.conf",
  );
  const confextDropIn = sysextDropIn.replace("systemd-sysext", "systemd-confext");
  const cases: [string[], string, string][] = [
    [
      ["--policy", "any"],
      "any",
      "root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent",
    ],
    [["--trusted"], "signed", "root=signed+absent:usr=signed+absent"],
    [["--policy", "verity"], "verity", "root=verity+absent:usr=verity+absent"],
    [["--policy", "root=signed+absent:usr=absent"], "custom", "root=signed+absent:usr=absent"],
    [["--policy", "signed"], "signed", "root=signed+absent:usr=signed+absent"],
  ];
  for (const [flags, name, spec] of cases) {
    const r = await runExtctl([
      "--root",
      root,
      "systemd",
      "install",
      "--systemd",
      "255",
      ...flags,
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as {
      policy: { name: string; spec: string };
      trusted: boolean;
    };
    assert.deepEqual(result.policy, { name, spec });
    assert.equal(result.trusted, name === "signed");
    for (const file of [sysextDropIn, confextDropIn]) {
      const text = await readFile(file, "utf8");
      const execs = text.split("\n").filter((l) => l.startsWith("ExecStart="));
      assert.equal(execs.length, 2, "one reset, one command: the old policy is gone");
      assert.ok(execs[1]?.endsWith(` refresh --image-policy=${spec}`), execs[1]);
    }
    const ok = verify(root);
    assert.equal(ok.code, 0, ok.stderr);
    // extctl's own policy resolution reads the drop-in back with the same name.
    const trust = await runExtctl(["--root", root, "trust", "list", "--json"]);
    if (trust.code === 0 && name !== "custom")
      assert.equal((JSON.parse(trust.stdout) as { policy: { name: string } }).policy.name, name);
  }

  const both = await runExtctl([
    "--root",
    root,
    "systemd",
    "install",
    "--trusted",
    "--policy",
    "any",
  ]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--policy and --trusted/);
  const bad = await runExtctl([
    "--root",
    root,
    "systemd",
    "install",
    "--policy",
    "root=signed usr=x",
  ]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(
    await readFile(sysextDropIn, "utf8"),
    /--image-policy=root=signed\+absent:usr=signed\+absent$/m,
  );
});

const UPGRADE_TARGETS = [
  "sysinit.target",
  "basic.target",
  "shutdown.target",
  "network-online.target",
  "timers.target",
];

test("--auto-upgrade writes an upgrade service and timer that verify; a bad --on-calendar writes nothing", async (t) => {
  if (!requirePeers(t, ["systemd-analyze"], { root: true })) return;
  const root = await systemdRoot(t);
  // The upgrade units keep systemd's default dependencies (a normal service after boot), so
  // verify needs the targets those name, copied from the host's systemd.
  for (const target of UPGRADE_TARGETS)
    await copyFile(
      `/lib/systemd/system/${target}`,
      path.join(root, "usr/lib/systemd/system", target),
    );
  // Uninstall never removes /etc/systemd/system itself; a node always has it.
  await mkdir(path.join(root, "etc/systemd/system"), { recursive: true });
  const before = await tree(root);
  const install = (...extra: string[]) =>
    runExtctl(["--root", root, "systemd", "install", "--systemd", "255", "--json", ...extra]);

  for (const [args, message] of [
    [["--on-calendar", "daily"], /--on-calendar is the upgrade timer's schedule/],
    [
      ["--auto-upgrade", "--on-calendar", "every full moon"],
      /is not a calendar event systemd reads/,
    ],
    [["--auto-upgrade", "--on-calendar", "daily\nExecStartPre=/bin/sh"], /--on-calendar/],
  ] as const) {
    const bad = await install(...args);
    assert.equal(bad.code, 2, `${args.join(" ")}: ${bad.stderr}`);
    assert.match(bad.stderr, message);
    assert.deepEqual(await tree(root), before, "a usage error writes nothing");
  }

  const r = await install("--auto-upgrade", "--on-calendar", "Mon *-*-* 03:00");
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { changed: string[]; autoUpgrade: unknown };
  assert.deepEqual(result.autoUpgrade, { onCalendar: "Mon *-*-* 03:00" });
  for (const p of [
    "/etc/systemd/system/extctl-upgrade.service",
    "/etc/systemd/system/extctl-upgrade.timer",
    "/etc/systemd/system/timers.target.wants/extctl-upgrade.timer",
  ])
    assert.ok(result.changed.includes(p), p);
  assert.equal(
    await readlink(path.join(root, "etc/systemd/system/timers.target.wants/extctl-upgrade.timer")),
    "/etc/systemd/system/extctl-upgrade.timer",
  );
  const timer = await readFile(path.join(root, "etc/systemd/system/extctl-upgrade.timer"), "utf8");
  assert.match(timer, /^OnCalendar=Mon \*-\*-\* 03:00$/m);
  const ok = verify(root, [
    "extctl-boot.service",
    "extctl-upgrade.service",
    "extctl-upgrade.timer",
    "systemd-sysext.service",
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stderr.trim(), "", "no warnings about the upgrade units");

  // The same check fails when what the service runs is missing: verify reads the new units too.
  await rm(path.join(root, "usr/bin/extctl"));
  const broken = verify(root, ["extctl-upgrade.service"]);
  assert.notEqual(broken.code, 0);
  assert.match(
    broken.stderr,
    /extctl-upgrade\.service: Command \/usr\/bin\/extctl is not executable/,
  );
  await writeFile(path.join(root, "usr/bin/extctl"), "#!/bin/sh\nexit 0\n");
  await chmod(path.join(root, "usr/bin/extctl"), 0o755);

  const again = await install("--auto-upgrade", "--on-calendar", "Mon *-*-* 03:00");
  assert.deepEqual((JSON.parse(again.stdout) as { changed: string[] }).changed, [], "idempotent");
  const daily = await install("--auto-upgrade");
  assert.deepEqual((JSON.parse(daily.stdout) as { changed: string[] }).changed, [
    "/etc/systemd/system/extctl-upgrade.timer",
  ]);
  assert.match(
    await readFile(path.join(root, "etc/systemd/system/extctl-upgrade.timer"), "utf8"),
    /^OnCalendar=daily$/m,
  );

  const un = await runExtctl(["--root", root, "systemd", "install", "--uninstall"]);
  assert.equal(un.code, 0, un.stderr);
  assert.deepEqual(await tree(root), before);
});
