// What apply remembers between runs: which source each store image came from (and its sha256),
// so a second apply knows nothing changed and a changed source is seen as one.
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { ExtctlError, errnoCode, fsError } from "../../util/errors.js";
import { writeFileAtomic } from "../../util/atomic.js";
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

export async function readApplyState(root: Root): Promise<ApplyState> {
  let text: string;
  try {
    text = await readFile(root.path(APPLY_STATE_FILE), "utf8");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return emptyState();
    throw fsError(e, `read ${APPLY_STATE_FILE}`);
  }
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
  const file = root.path(APPLY_STATE_FILE);
  try {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, JSON.stringify(state, null, 2) + "\n", 0o644);
  } catch (e) {
    throw fsError(e, `write ${APPLY_STATE_FILE}`);
  }
}
