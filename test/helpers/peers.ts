// Real peers for end-to-end tests. Outside CI a missing peer skips the test with a reason; under
// CI=true it fails, because a skipped end-to-end test proves nothing.
import { execFileSync, spawnSync } from "node:child_process";
import type { TestContext } from "node:test";

export function hasCommand(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Returns true when every named program is on PATH (and we are root when `root` is set).
 * Otherwise skips the test outside CI and throws under CI.
 */
export function requirePeers(
  t: TestContext,
  names: readonly string[],
  options: { root?: boolean } = {},
): boolean {
  const missing = names.filter((n) => !hasCommand(n));
  if (options.root && !isRoot()) missing.push("root privileges");
  if (missing.length === 0) return true;
  const message = `missing peers: ${missing.join(", ")} (bash scripts/install-peers.sh installs them)`;
  if (process.env.CI === "true") throw new Error(message);
  t.skip(message);
  return false;
}

export function run(
  command: string,
  args: readonly string[],
  options: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): string {
  return execFileSync(command, args, {
    encoding: "utf8",
    input: options.input,
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["pipe", "pipe", "pipe"],
    maxBuffer: 256 * 1024 * 1024,
  });
}
