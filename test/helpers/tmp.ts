// Throwaway directories and node roots for tests, removed when the test ends.
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";

export async function tempDir(t: TestContext, prefix = "extctl-test-"): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A minimal node root: usr/lib/os-release (Debian 12 by default) and an empty /run. */
const DEBIAN_12 = 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n';

export async function tempRoot(t: TestContext, osRelease = DEBIAN_12): Promise<string> {
  const dir = await tempDir(t, "extctl-root-");
  await populateRoot(dir, osRelease);
  return dir;
}

async function populateRoot(dir: string, osRelease: string): Promise<void> {
  await mkdir(path.join(dir, "usr/lib"), { recursive: true });
  await mkdir(path.join(dir, "usr/bin"), { recursive: true });
  await mkdir(path.join(dir, "run"), { recursive: true });
  await mkdir(path.join(dir, "etc"), { recursive: true });
  await writeFile(path.join(dir, "usr/lib/os-release"), osRelease);
}

/**
 * A node root for end-to-end tests that merge: like tempRoot, plus a tmpfs on ROOT/run as on a
 * real node (extctl needs /run to be a mount of its own to show images to systemd-sysext --root).
 * Must run as root inside a private mount namespace (scripts/test.sh provides one). Everything
 * mounted below the root is lazily unmounted before the directory is removed.
 */
export async function tempNodeRoot(t: TestContext, osRelease = DEBIAN_12): Promise<string> {
  const { execFileSync } = await import("node:child_process");
  const dir = await mkdtemp(path.join(tmpdir(), "extctl-node-"));
  t.after(async () => {
    for (const sub of ["usr", "opt", "etc", "run"]) {
      try {
        execFileSync("umount", ["-R", "-l", path.join(dir, sub)], { stdio: "ignore" });
      } catch {
        // not mounted
      }
    }
    await rm(dir, { recursive: true, force: true });
  });
  await populateRoot(dir, osRelease);
  execFileSync("mount", ["-t", "tmpfs", "-o", "mode=0755", "node-run", path.join(dir, "run")]);
  return dir;
}
