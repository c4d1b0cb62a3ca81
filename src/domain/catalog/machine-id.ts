// The node's /etc/machine-id under the root: what places it in a staged rollout's wave
// (resolve.ts rolloutBucket). Absent, empty or malformed: undefined, so it is in no wave.
import { READ_CAPS, readInRoot } from "../../util/bounded-read.js";
import type { Root } from "../../util/root.js";

export const MACHINE_ID_FILE = "/etc/machine-id";

/** The machine-id (32 lowercase hex digits), or undefined when the root has none. */
export async function readMachineId(root: Root): Promise<string | undefined> {
  const bytes = await readInRoot(root, MACHINE_ID_FILE, {
    cap: READ_CAPS.small,
    what: "the machine-id",
  });
  const id = bytes?.toString("utf8").trim().toLowerCase();
  // "uninitialized" (systemd's first-boot marker) and other junk are no machine-id.
  return id !== undefined && /^[0-9a-f]{32}$/.test(id) ? id : undefined;
}
