// Whether a stored version may become current: the trust policy first (what boot would link),
// then systemd's release rules for this node or another OS. Shared by upgrade and rollback.
import type { Context } from "../util/context.js";
import { storeFileName, type VersionEntry, type VersionedStore } from "../domain/store/versions.js";

/** Why `entry` must not become current on this node (or that OS), or undefined when it may. */
export async function refusalOf(
  ctx: Context,
  versions: VersionedStore,
  name: string,
  entry: VersionEntry,
  options: { policy?: string; trust?: string[]; osRelease?: Record<string, string> },
): Promise<string | undefined> {
  const file = await versions.store.root.readPath(versions.filePath(name, entry));
  const { admission } = await import("../domain/trust/admission.js");
  const gate = await admission(ctx, {
    ...(options.policy === undefined ? {} : { policy: options.policy }),
    ...(options.trust === undefined ? {} : { trust: options.trust }),
  });
  const verdict = await gate.evaluate(file);
  if (verdict && !verdict.ok)
    return `the ${gate.policy.policy.name} policy (from ${gate.policy.source}) refuses it: ${verdict.reason}`;
  const { checkImage } = await import("./check.js");
  const check = await checkImage(ctx, {
    image: file,
    kind: versions.store.kind,
    fileName: storeFileName(name),
    ...(options.osRelease ? { osRelease: options.osRelease } : {}),
  });
  if (!check.compatible)
    return `it would not merge ${options.osRelease ? "on that OS" : "on this node"}: ${check.reason}`;
  return undefined;
}
