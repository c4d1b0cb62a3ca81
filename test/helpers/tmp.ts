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
export async function tempRoot(
  t: TestContext,
  osRelease = 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
): Promise<string> {
  const dir = await tempDir(t, "extctl-root-");
  await mkdir(path.join(dir, "usr/lib"), { recursive: true });
  await mkdir(path.join(dir, "usr/bin"), { recursive: true });
  await mkdir(path.join(dir, "run"), { recursive: true });
  await mkdir(path.join(dir, "etc"), { recursive: true });
  await writeFile(path.join(dir, "usr/lib/os-release"), osRelease);
  return dir;
}
