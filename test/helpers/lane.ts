// Which lane a test runs in (scripts/lanes.sh): "host" on the machine itself (Debian 12, tests
// pass --root), or "252", "257", "262" inside a lane root where `/` is disposable (an overlay
// that disappears with the run), so tests may enable images on the real root there.
import { spawnSync } from "node:child_process";

export type Lane = "host" | "252" | "257" | "262";

/** The lane of this test process: EXTCTL_LANE, set by `scripts/lanes.sh run`, else "host". */
export function currentLane(): Lane {
  const lane = process.env.EXTCTL_LANE;
  if (lane === "252" || lane === "257" || lane === "262") return lane;
  return "host";
}

/** True inside a lane: the root `/` is a throwaway overlay and systemd is not PID 1. */
export function inLane(): boolean {
  return currentLane() !== "host";
}

let cachedVersion: number | undefined;

/** The major version of the systemd-sysext on PATH (252, 257, 262, ...); 0 if none answers. */
export function systemdVersion(): number {
  if (cachedVersion !== undefined) return cachedVersion;
  const out = spawnSync("systemd-sysext", ["--version"], { encoding: "utf8" });
  const m = /^systemd (\d+)/m.exec(out.stdout ?? "");
  cachedVersion = m ? Number(m[1]) : 0;
  return cachedVersion;
}

/** A skip reason for tests that change the real `/` (only lanes have a disposable one). */
export const LIVE_ROOT_ONLY =
  "changes the real / and runs only in a lane (bash scripts/lanes.sh run 257 ...); CI runs every lane";

/**
 * Whether this systemd-sysext mounts a DDI's data partition without dm-verity when
 * SYSTEMD_DISSECT_VERITY_EMBEDDED=0, which is how tests merge verity DDIs on these kernels (no
 * device-mapper). Seen in the lanes: 252 and 257 do; 262 opens the verity partition and sets up
 * dm-verity regardless, so there such an image cannot merge on this machine at all.
 */
export function mergesVerityDdiWithoutDm(): boolean {
  return systemdVersion() <= 257;
}

/** What systemd-sysext (or extctl relaying it) says when dm-verity is needed and missing. */
export const NO_DEVICE_MAPPER =
  /Cannot initialize device-mapper|Cannot use device \S*-verity|Failed to read metadata for image \S+: Operation not supported/;
