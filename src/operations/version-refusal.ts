// Whether a stored version may become current: its bytes still the ones fetched (the SHA-256 in
// its record), then the trust policy (what boot would link), then systemd's release rules for
// this node or another OS. The one gate of install NAME@VERSION, upgrade and rollback.
import type { Context } from "../util/context.js";
import { fsError } from "../util/errors.js";
import {
  fileSha256,
  storeFileName,
  type VersionEntry,
  type VersionedStore,
} from "../domain/store/versions.js";

/**
 * Why `entry` must not become current on this node (or that OS), or undefined when it may.
 * `fresh`: its file was fetched by this run and hashed as it arrived (not hashed again). A kept
 * version is hashed again (streamed) and compared with its record; one from a record an older
 * extctl wrote (no digest) is admitted under the policy alone, and its digest recorded in
 * `entry` for the caller to write, so the next switch to it is checked.
 */
export async function refusalOf(
  ctx: Context,
  versions: VersionedStore,
  name: string,
  entry: VersionEntry,
  options: {
    policy?: string;
    trust?: string[];
    osRelease?: Record<string, string>;
    fresh?: boolean;
  },
): Promise<string | undefined> {
  const nodePath = versions.filePath(name, entry);
  const file = await versions.store.root.readPath(nodePath);
  let digest: string | undefined;
  if (!options.fresh || entry.sha256 === undefined) {
    try {
      digest = await fileSha256(file);
    } catch (e) {
      throw fsError(e, `read ${nodePath} (${name} ${entry.version})`);
    }
    if (entry.sha256 !== undefined && digest !== entry.sha256)
      return `${nodePath} changed since it was fetched (SHA-256 ${entry.sha256} then, ${digest} now); delete that file and \`install ${name}@${entry.version}\` fetches it again`;
  }
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
  if (entry.sha256 === undefined && digest !== undefined) {
    entry.sha256 = digest;
    ctx.log.info(
      `${name} ${entry.version} was kept by an older extctl without its SHA-256; admitted under the ${gate.policy.policy.name} policy and its SHA-256 recorded now`,
    );
  }
  return undefined;
}
