// docs/kairos.md's "Building a sysext for Kairos" and "Deploying Kairos with a sysext", run as they
// stand: every ```sh block of the two sections, in order, in one bash, against a real
// docker-registry holding a miniature OS image and a temp target root. If the document's commands
// stop working, or stop doing what it says, this fails.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { lstat, readFile, readlink, writeFile, chmod, mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { EXTCTL_BIN, runExtctl } from "../helpers/cli.js";
import { NVIDIA_FIRMWARE, pushOsImage } from "../helpers/os-image.js";
import { requirePeers } from "../helpers/peers.js";
import { startRegistry } from "../helpers/registry.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

const README = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../docs/kairos.md");
const FROM = "### Building a sysext for Kairos";
const TO = "### Deploying Kairos with a sysext";

/** The fenced blocks of one language between the heading `from` and the next `## ` heading. */
function blocks(readme: string, from: string, language: string): string[] {
  const start = readme.indexOf(`\n${from}\n`);
  assert.ok(start >= 0, `docs/kairos.md has no "${from}" section`);
  const rest = readme.slice(start + from.length + 2);
  const end = rest.search(/^## /m);
  const section = end < 0 ? rest : rest.slice(0, end);
  const fence = new RegExp("^```" + language + "\\n([\\s\\S]*?)^```$", "gm");
  return [...section.matchAll(fence)].map((m) => m[1] ?? "");
}

test("docs/kairos.md's build, publish and preseed walkthrough runs and does what it says", async (t) => {
  const peers = ["docker-registry", "skopeo", "mkfs.erofs", "openssl", "bash"];
  if (!requirePeers(t, peers, { root: true })) return;
  const readme = await readFile(README, "utf8");
  assert.ok(readme.includes(`\n${TO}\n`), `docs/kairos.md has no "${TO}" section`);
  const script = blocks(readme, FROM, "sh").join("\n");
  assert.match(script, /extctl build sysext .*--include|--include usr\/lib\/firmware\/nvidia/);
  assert.match(script, /extctl publish /);
  assert.match(script, /extctl --root "\$ROOT" apply /);

  const registry = await startRegistry(t);
  await pushOsImage(t, `${registry.host}/kairos/os:v1`);
  const work = await tempDir(t, "extctl-walkthrough-");
  const root = await tempRoot(t);
  // `extctl` on PATH is this checkout's build, as `ln -s bin/extctl.cjs` in docs/install.md makes it.
  const bin = path.join(work, "bin");
  await mkdir(bin);
  await writeFile(
    path.join(bin, "extctl"),
    `#!/bin/sh\nexec "${process.execPath}" "${EXTCTL_BIN}" "$@"\n`,
  );
  await chmod(path.join(bin, "extctl"), 0o755);
  const ran = spawnSync("bash", ["-euo", "pipefail", "-c", script], {
    cwd: work,
    encoding: "utf8",
    timeout: 300_000,
    env: {
      ...process.env,
      PATH: `${bin}:${process.env.PATH ?? ""}`,
      NO_COLOR: "1",
      REGISTRY: registry.host,
      ROOT: root,
    },
  });
  assert.equal(ran.status, 0, `the walkthrough failed:\n${ran.stdout}\n${ran.stderr}`);
  if (process.env.EXTCTL_WALKTHROUGH_SHOW) process.stderr.write(ran.stdout + ran.stderr);

  // The build printed what the document shows it printing.
  for (const line of blocks(readme, FROM, "text")
    .join("\n")
    .split("\n")
    .filter((l) => l.trim() !== "")) {
    assert.ok(ran.stdout.includes(line), `the build did not print "${line}":\n${ran.stdout}`);
  }
  const bytes = Object.values(NVIDIA_FIRMWARE).reduce((a, b) => a + b, 0);
  assert.match(ran.stdout, new RegExp(`^carries +4 files, ${bytes} bytes `, "m"));
  // publish's pinned reference, echoed.
  const pinned = new RegExp(
    `^oci://${registry.host}/kairos/sysext/nvidia-firmware:v1@sha256:[0-9a-f]{64}$`,
    "m",
  );
  assert.match(ran.stdout, pinned);

  // The target root: the image in the store, linked into common, and the policy written.
  const store = path.join(root, "var/lib/kairos/extensions");
  const image = path.join(store, "nvidia-firmware.sysext.raw");
  assert.ok((await lstat(image)).isFile());
  const link = path.join(store, "common/nvidia-firmware.sysext.raw");
  assert.equal(path.resolve(path.dirname(link), await readlink(link)), image);
  for (const profile of ["active", "passive", "recovery"]) {
    await assert.rejects(lstat(path.join(store, profile, "nvidia-firmware.sysext.raw")));
  }
  assert.equal((await readFile(path.join(root, "etc/extctl/policy"), "utf8")).trim(), "signed");
  // `sysext list --common`: enabled there, and this (Debian 12, systemd 252) root would merge it.
  assert.match(ran.stdout, /^nvidia-firmware\.sysext\.raw +- +ddi\/erofs +yes +yes +common +no$/m);

  // What was preseeded is the signed image holding only the firmware subtree.
  const keys = path.join(work, "keys");
  const verified = await runExtctl(["verify", image, "--trust", path.join(keys, "db.pem")]);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  const inspected = await runExtctl(["inspect", "--files", "--json", image]);
  assert.equal(inspected.code, 0, inspected.stderr);
  const files = (JSON.parse(inspected.stdout) as { files: { path: string; type: string }[] }).files
    .filter((f) => f.type === "file" && !f.path.startsWith("/usr/lib/extension-release.d/"))
    .map((f) => f.path.slice(1))
    .sort();
  assert.deepEqual(files, Object.keys(NVIDIA_FIRMWARE).sort());

  // "A second apply of the same file changes nothing."
  const again = await runExtctl([
    "--root",
    root,
    "apply",
    path.join(work, "extensions.yaml"),
    "--insecure-registry",
    registry.host,
    "--json",
  ]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((JSON.parse(again.stdout) as { changed: boolean }).changed, false);
});
