// Disk full: the node root is a small tmpfs (mounted inside a private mount namespace of the run);
// installing an image bigger than the free space fails clearly and leaves nothing half-written.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { requirePeers } from "../helpers/peers.js";
import { tempDir } from "../helpers/tmp.js";
import { EXTCTL_BIN, faultTrials, recordFaults, runProcess } from "./lib.js";
import { randomImageBytes } from "../helpers/stub-image.js";

// Runs inside one namespace: mount the tmpfs root, install, then list what the store holds.
const SCRIPT = `set -u
root="$1"; size="$2"; shift 2
mount -t tmpfs -o size="$size" extctl-full "$root" || exit 90
mkdir -p "$root/usr/lib" "$root/run"
echo ID=debian > "$root/usr/lib/os-release"
"$@"; code=$?
echo "EXIT $code"
find "$root/var/lib/kairos" -mindepth 1 -printf 'FILE %P %s\\n' 2>/dev/null
df -k --output=avail "$root" | tail -1 | sed 's/^/AVAIL /'
`;

test("install into a full disk fails clearly and leaves nothing behind", async (t) => {
  if (!requirePeers(t, ["unshare", "mount"], { root: true })) return;
  const dir = await tempDir(t);
  const big = path.join(dir, "big.sysext.raw");
  await writeFile(big, randomImageBytes(12 << 20));
  const small = path.join(dir, "small.sysext.raw");
  await writeFile(small, randomImageBytes(64 << 10));
  const trials = Math.max(3, Math.ceil(faultTrials() / 3));
  let survived = 0;
  for (let i = 0; i < trials; i++) {
    const root = path.join(dir, `root${i}`);
    await mkdir(root);
    // 4-8 MiB: the 12 MiB image never fits, the small one always does.
    const size = `${4 + (i % 5)}m`;
    const runInstall = (file: string) =>
      runProcess(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT, "sh", root, size].concat([
          process.execPath,
          EXTCTL_BIN,
          "--root",
          root,
          "sysext",
          "install",
          `file://${file}`,
        ]),
        { timeoutMs: 60_000 },
      );
    const full = await runInstall(big);
    assert.equal(full.hung, false);
    assert.match(full.stdout, /EXIT 1\n/, full.stdout + full.stderr);
    // The size is known (file:), so the free space is checked before a byte is written.
    assert.match(
      full.stderr,
      /needs 12 MiB, more than [\d.]+ MiB, the free space of the store's file system/,
    );
    assert.doesNotMatch(full.stderr, /internal error|at .*\.js:\d+/);
    const files = full.stdout.split("\n").filter((l) => l.startsWith("FILE "));
    // The store dir may exist; no image and no temp file may.
    const leftovers = files.filter((l) => !/^FILE extensions \d+$/.test(l));
    assert.deepEqual(leftovers, [], `left behind: ${files.join(", ")}`);
    // And the space is free again: a small image installs on the same (fresh) tmpfs size.
    const fits = await runInstall(small);
    assert.match(fits.stdout, /EXIT 0\n/, fits.stderr);
    assert.match(fits.stdout, /FILE extensions\/small\.sysext\.raw 65536\n/);
    survived++;
  }
  await recordFaults({
    name: "disk full: install bigger than the free space",
    kind: "disk-full",
    trials,
    survived,
    lost: trials - survived,
  });
});
