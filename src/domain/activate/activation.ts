// Refresh, then check what really merged: every image linked in /run that systemd did not merge
// is reported with a reason (systemd's own words when we ran it, else what we can see). When the
// refresh fails, the command's link changes are rolled back and the node refreshed again.
import type { Context } from "../../util/context.js";
import { ExtctlError } from "../../util/errors.js";
import type { ExtensionStore } from "../store/store.js";
import { summarizeImage } from "../image/summary.js";
import { isMerged, mergedNames, readMerged, systemdNames, type MergedHierarchy } from "./merged.js";
import { MissingToolError, refresh, type RefreshMode } from "./refresh.js";
import type { LinkTransaction } from "./transaction.js";

export interface UnmergedImage {
  name: string;
  reason: string;
}

export interface ActivationReport {
  refreshed: boolean;
  mode: string;
  merged: MergedHierarchy[];
  unmerged: UnmergedImage[];
}

/**
 * Why a linked image is not merged: systemd's own words when we have its log, else what reading
 * the image tells (a broken link, the release-file rules systemd applies).
 */
export async function diagnoseUnmerged(
  ctx: Context,
  store: ExtensionStore,
  name: string,
  systemdReasons: ReadonlyMap<string, string> = new Map(),
): Promise<string> {
  for (const n of systemdNames(name)) {
    const reason = systemdReasons.get(n);
    if (reason) return reason;
  }
  const { maskOf, describeMask } = await import("./masking.js");
  const { dissectingSystemd } = await import("../image/host.js");
  const mask = await maskOf(
    ctx.root,
    store.kind,
    await dissectingSystemd(ctx.root),
    store.layout.runtime,
    name,
  );
  if (mask) return describeMask(mask);
  const link = await store.linkInfo(store.runtimeLinkPath(name));
  if (link && !link.resolves)
    return `its link ${store.runtimeLinkPath(name)} -> ${link.target} leads to no image`;
  const target = store.root.path(await store.root.resolve(store.runtimeLinkPath(name)));
  const summary = await summarizeImage(ctx, target, store.kind);
  if (!summary.compatible && summary.reason) return summary.reason;
  const refusal = await unitPolicyRefusal(ctx, store, target);
  if (refusal) return refusal;
  return `${store.layout.tool} did not merge it although its release file fits this host; see its log, or \`extctl verify\` for verity problems`;
}

/**
 * What the image policy systemd-sysext/confext runs with (its unit's drop-in) says of the image,
 * when it refuses it: on a booted node systemd's own reason is in its journal only, and an image
 * linked behind extctl's back (never checked by enable or boot) shows up here.
 */
async function unitPolicyRefusal(
  ctx: Context,
  store: ExtensionStore,
  hostPath: string,
): Promise<string | undefined> {
  const { unitImagePolicy } = await import("../trust/policy.js");
  const unit = await unitImagePolicy(ctx, store.kind);
  if (!unit || unit.policy.name === "any") return undefined;
  const [{ loadTrustStore }, { evaluateImage }] = await Promise.all([
    import("../trust/truststore.js"),
    import("../trust/image-trust.js"),
  ]);
  const verdict = await evaluateImage(ctx, hostPath, unit.policy, await loadTrustStore(ctx));
  return verdict.ok
    ? undefined
    : `${verdict.reason} (the policy ${store.layout.tool} runs with, from ${unit.source})`;
}

export async function findUnmerged(
  ctx: Context,
  store: ExtensionStore,
  merged: readonly MergedHierarchy[],
  systemdReasons?: ReadonlyMap<string, string>,
): Promise<UnmergedImage[]> {
  const names = mergedNames(merged);
  const result: UnmergedImage[] = [];
  for (const name of await store.runtimeLinks()) {
    if (!isMerged(name, names))
      result.push({ name, reason: await diagnoseUnmerged(ctx, store, name, systemdReasons) });
  }
  return result;
}

/**
 * Refreshes `store.kind` and reports what merged. On failure the transaction is rolled back,
 * a second refresh restores the previous state (best effort), and the error says both.
 */
export async function activate(
  ctx: Context,
  store: ExtensionStore,
  tx: LinkTransaction,
  mode: RefreshMode,
): Promise<ActivationReport> {
  let result;
  try {
    result = await refresh(ctx, store.kind, mode);
  } catch (e) {
    const problems = await tx.rollback();
    let restored = "";
    if (e instanceof MissingToolError) {
      // Nothing ran, so nothing changed on the node: there is no previous state to refresh.
      restored = "; the links this command made were undone";
    } else if (mode !== "none") {
      try {
        await refresh(ctx, store.kind, mode);
        restored = "; the links this command made were undone and the previous state refreshed";
      } catch {
        restored =
          "; the links this command made were undone, but refreshing the previous state failed too";
      }
    }
    const base = e instanceof ExtctlError ? e.message : String(e);
    throw new ExtctlError(
      "refresh",
      `${base}${restored}${problems.length ? ` (rollback problems: ${problems.join("; ")})` : ""}`,
      {
        cause: e,
        ...(e instanceof ExtctlError && e.hint ? { hint: e.hint } : {}),
      },
    );
  }
  if (result.mode === "none") return { refreshed: false, mode: "none", merged: [], unmerged: [] };
  const merged = await readMerged(ctx.root, store.kind, ctx.env);
  const unmerged = await findUnmerged(ctx, store, merged, result.skipped);
  for (const u of unmerged)
    ctx.log.warn(`${u.name} is linked in ${store.layout.runtime} but not merged: ${u.reason}`);
  return { refreshed: true, mode: result.mode, merged, unmerged };
}
