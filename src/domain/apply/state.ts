// What apply remembers between runs: which source each store image came from (and its sha256),
// so a second apply knows nothing changed and a changed source is seen as one.
import { ExtctlError, fsError } from "../../util/errors.js";
import { writeFileInRoot } from "../../util/atomic.js";
import { READ_CAPS } from "../../util/bounded-read.js";
import { readOwnedInRoot } from "../../util/owned-state.js";
import type { Root } from "../../util/root.js";
import type { ExtensionKind } from "../store/layout.js";

/** On the persistent partition, beside the stores. */
export const APPLY_STATE_FILE = "/var/lib/kairos/extctl-apply.json";

export interface SourceRecord {
  source: string;
  sha256: string;
}

export type ApplyState = Record<ExtensionKind, Record<string, SourceRecord>>;

export function emptyState(): ApplyState {
  return { sysext: {}, confext: {} };
}

export async function readApplyState(
  root: Root,
  warn: (message: string) => void,
): Promise<ApplyState> {
  // What apply installed decides what it prunes: believed only when root owns it.
  const raw = await readOwnedInRoot(root, APPLY_STATE_FILE, {
    cap: READ_CAPS.config,
    what: "the apply state",
    warn,
  });
  if (raw === undefined) return emptyState();
  const text = raw.toString("utf8");
  try {
    const parsed = JSON.parse(text) as Partial<ApplyState>;
    return { sysext: parsed.sysext ?? {}, confext: parsed.confext ?? {} };
  } catch {
    throw new ExtctlError("config", `${APPLY_STATE_FILE} is not valid JSON`, {
      hint: "delete it; the next apply reinstalls what the file lists",
    });
  }
}

export async function writeApplyState(root: Root, state: ApplyState): Promise<void> {
  try {
    await writeFileInRoot(root, APPLY_STATE_FILE, JSON.stringify(state, null, 2) + "\n", 0o644);
  } catch (e) {
    throw fsError(e, `write ${APPLY_STATE_FILE}`);
  }
}
