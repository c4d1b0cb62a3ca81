// Live activation with the lane root as `/` (an installer, a container or a chroot: systemd not
// PID 1), on each lane's systemd: `enable --common --now` on the real root must merge for real
// (plain `refresh`: with `--root=/` 252 and 257 skip the link chain in /run/extensions), and a
// confext must merge where systemd-confext exists (254+) and be refused clearly where it does not.
// These tests change the real `/`, so they run only in a lane (scripts/lanes.sh), whose root is a
// throwaway overlay; CI runs every lane.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { access, readFile, readdir } from "node:fs/promises";
import { jsonOf, runExtctl } from "../helpers/cli.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir } from "../helpers/tmp.js";
import { helloScript, makeSampleImage } from "../helpers/images.js";
import { currentLane, inLane, LIVE_ROOT_ONLY, systemdVersion } from "../helpers/lane.js";
import type { CheckResult, StatusResult } from "../../src/index.js";

const skip = inLane() ? false : LIVE_ROOT_ONLY;
const lane = currentLane();

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

async function mergedList(file: string): Promise<string[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text.split("\n").filter(Boolean);
}

async function installed(
  t: TestContext,
  kind: "sysext" | "confext",
  name: string,
  files: Record<string, string>,
) {
  const work = await tempDir(t);
  const image = await makeSampleImage(work, {
    fileName: `${name}.raw`,
    release: "ID=_any\n",
    kind,
    files,
  });
  const result = await runExtctl([kind, "install", `file://${image}`]);
  assert.equal(result.code, 0, result.stderr);
  t.after(async () => {
    await runExtctl([kind, "disable", name, "--common", "--now"]);
    await runExtctl([kind, "remove", name]);
  });
}

test(
  `lane ${lane}: sysext enable --common --now merges into the real /usr and disable --now unmerges`,
  { skip },
  async (t) => {
    if (!requirePeers(t, ["systemd-sysext", "mksquashfs"], { root: true })) return;
    assert.equal(String(systemdVersion()), lane, "the lane runs the systemd it is named after");
    await installed(t, "sysext", "lanehello", {
      "usr/bin/lanehello": helloScript(`hello from lane ${lane}`),
    });
    const enabled = await runExtctl(["sysext", "enable", "lanehello", "--common", "--now"]);
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.deepEqual(await mergedList("/usr/.systemd-sysext/extensions"), ["lanehello"]);
    assert.equal(
      execFileSync("/usr/bin/lanehello", { encoding: "utf8" }).trim(),
      `hello from lane ${lane}`,
    );

    const status = jsonOf<StatusResult>(await runExtctl(["sysext", "status", "--json"]));
    assert.deepEqual(status.kinds[0]?.merged[0]?.extensions, ["lanehello"]);
    assert.deepEqual(status.kinds[0]?.mismatches, []);

    const disabled = await runExtctl(["sysext", "disable", "lanehello", "--common", "--now"]);
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.equal(await exists("/usr/bin/lanehello"), false);
  },
);

test(
  `lane ${lane}: confext enable --common --now ${lane === "252" ? "is refused clearly (no systemd-confext)" : "merges into the real /etc"}`,
  { skip },
  async (t) => {
    if (!requirePeers(t, ["mksquashfs"], { root: true })) return;
    await installed(t, "confext", "laneconf", { "etc/laneconf.conf": `lane=${lane}\n` });
    const enabled = await runExtctl(["confext", "enable", "laneconf", "--common", "--now"]);
    if (systemdVersion() < 254) {
      assert.notEqual(enabled.code, 0, "a confext cannot merge without systemd-confext");
      assert.match(enabled.stderr, /systemd-confext is not installed/);
      assert.match(enabled.stderr, /links this command made were undone/);
      assert.deepEqual(await readdir("/run/confexts").catch(() => []), []);
      assert.equal(await exists("/etc/laneconf.conf"), false);
      return;
    }
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.equal(await readFile("/etc/laneconf.conf", "utf8"), `lane=${lane}\n`);
    const status = jsonOf<StatusResult>(await runExtctl(["confext", "status", "--json"]));
    assert.deepEqual(status.kinds[0]?.merged[0]?.extensions, ["laneconf"]);
    assert.deepEqual(status.kinds[0]?.mismatches, []);

    const disabled = await runExtctl(["confext", "disable", "laneconf", "--common", "--now"]);
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.equal(await exists("/etc/laneconf.conf"), false);
  },
);

test(
  `lane ${lane}: check --kind confext ${lane === "252" ? "says it will not merge (no systemd-confext)" : "says it merges"}`,
  { skip },
  async (t) => {
    if (!requirePeers(t, ["mksquashfs"])) return;
    const work = await tempDir(t);
    const image = await makeSampleImage(work, {
      fileName: "laneconf.raw",
      release: "ID=_any\n",
      kind: "confext",
      files: { "etc/laneconf.conf": "x\n" },
    });
    const result = await runExtctl(["check", image, "--kind", "confext", "--json"]);
    const verdict = jsonOf<CheckResult>(result);
    if (systemdVersion() < 254) {
      assert.equal(verdict.compatible, false);
      assert.match(verdict.reason ?? "", /no systemd-confext/);
    } else {
      assert.equal(verdict.compatible, true, result.stdout);
    }
  },
);
