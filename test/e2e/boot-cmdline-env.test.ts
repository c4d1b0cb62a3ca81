// Where `extctl boot` takes the kernel command line from, against the real systemd-sysext:
// --cmdline FILE, then $SYSTEMD_PROC_CMDLINE (as systemd reads it: a container's /proc/cmdline is
// the host's), then ROOT/proc/cmdline. Bare squashfs images made with mksquashfs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { runExtctl } from "../helpers/cli.js";
import { makeSampleImage } from "../helpers/images.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempNodeRoot } from "../helpers/tmp.js";

const STORE = "var/lib/kairos/extensions";
const RELEASE = "ID=_any\n";

interface BootJson {
  state: string;
  detectedBy: string;
  linked: { name: string; profile: string }[];
}

async function boot(root: string, env: NodeJS.ProcessEnv, ...extra: string[]) {
  const r = await runExtctl(["--root", root, "boot", "--json", ...extra], { env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as BootJson;
}

async function merged(root: string): Promise<string[]> {
  const text = await readFile(path.join(root, "usr/.systemd-sysext/extensions"), "utf8");
  return text.split("\n").filter(Boolean).sort();
}

test("boot reads $SYSTEMD_PROC_CMDLINE before ROOT/proc/cmdline, --cmdline before both; systemd-sysext merges the profile it picked", async (t) => {
  if (!requirePeers(t, ["systemd-sysext", "mksquashfs"], { root: true })) return;
  const work = await tempDir(t);
  const root = await tempNodeRoot(t);
  for (const [name, profile] of [
    ["act", "active"],
    ["pas", "passive"],
    ["rec", "recovery"],
  ] as const) {
    const file = await makeSampleImage(work, {
      fileName: `${name}.raw`,
      release: RELEASE,
      files: { [`usr/share/${name}/hello`]: `hello from ${name}\n` },
    });
    await mkdir(path.join(root, STORE, profile), { recursive: true });
    await writeFile(path.join(root, STORE, `${name}.raw`), await readFile(file));
    await symlink(`/${STORE}/${name}.raw`, path.join(root, STORE, profile, `${name}.raw`));
  }
  await mkdir(path.join(root, "proc"));
  await writeFile(path.join(root, "proc/cmdline"), "BOOT_IMAGE=/vmlinuz root=LABEL=COS_ACTIVE\n");

  // The variable wins over the root's file, and systemd-sysext merges what it chose.
  const fromEnv = await boot(root, { SYSTEMD_PROC_CMDLINE: "root=LABEL=COS_PASSIVE ro" });
  assert.equal(fromEnv.state, "passive");
  assert.match(fromEnv.detectedBy, /SYSTEMD_PROC_CMDLINE/);
  assert.deepEqual(
    fromEnv.linked.map((l) => `${l.profile}/${l.name}`),
    ["passive/pas.raw"],
  );
  assert.deepEqual(await merged(root), ["pas"]);
  assert.equal(await readFile(path.join(root, "usr/share/pas/hello"), "utf8"), "hello from pas\n");

  // --cmdline wins over the variable (a new boot: /run starts empty).
  await rm(path.join(root, "run/extensions"), { recursive: true, force: true });
  await rm(path.join(root, "run/cos"), { recursive: true, force: true });
  const file = path.join(work, "cmdline");
  await writeFile(file, "root=LABEL=COS_RECOVERY\n");
  const fromFile = await boot(
    root,
    { SYSTEMD_PROC_CMDLINE: "root=LABEL=COS_PASSIVE" },
    "--cmdline",
    file,
  );
  assert.equal(fromFile.state, "recovery");
  assert.deepEqual(await merged(root), ["rec"]);

  // Without either, ROOT/proc/cmdline.
  await rm(path.join(root, "run/extensions"), { recursive: true, force: true });
  await rm(path.join(root, "run/cos"), { recursive: true, force: true });
  const env: NodeJS.ProcessEnv = { SYSTEMD_PROC_CMDLINE: undefined };
  const fromRoot = await boot(root, env);
  assert.equal(fromRoot.state, "active");
  assert.deepEqual(await merged(root), ["act"]);
});
