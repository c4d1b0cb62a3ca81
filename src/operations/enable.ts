// `enable NAME --PROFILE [--now]`: link the image into a profile and, with --now, into /run and
// refresh, when the node is booted in that profile (or it is common). --now is honoured even
// when the image was enabled before (ours 3); a failed refresh or a merge that did not happen
// undoes the links this command made (ours 4, 6).
import type { Context } from "../util/context.js";
import { ExtctlError } from "../util/errors.js";
import { ExtensionStore } from "../domain/store/store.js";
import type { ExtensionKind, Profile } from "../domain/store/layout.js";
import { resolveName } from "../domain/store/names.js";
import { isLiveProfile, readSentinels } from "../domain/activate/boot-state.js";
import { LinkTransaction } from "../domain/activate/transaction.js";
import { activate, type ActivationReport } from "../domain/activate/activation.js";
import { isMerged, mergedNames } from "../domain/activate/merged.js";
import type { RefreshMode } from "../domain/activate/refresh.js";
import { requireRoot, withLock } from "./guard.js";

export interface EnableOptions {
  kind: ExtensionKind;
  name: string;
  profile: Profile;
  now?: boolean;
  regex?: boolean;
  refresh?: RefreshMode;
  /** Image policy to apply instead of the node's (signed, verity, any or systemd syntax). */
  policy?: string;
  /** Extra trusted certificates (files or dirs) besides ROOT's verity.d. */
  trust?: string[];
}

export interface EnableResult {
  image: string;
  profile: Profile;
  /** False when the profile link already existed. */
  linked: boolean;
  /** Set with --now: whether the image is merged afterwards. */
  merged?: boolean;
  /** The policy applied and what it found. */
  policy: { name: string; source: string; verdict?: string };
  /** Set when --now could not merge because the node is not booted in the profile. */
  notLive?: string;
  activation?: ActivationReport;
}

export async function enable(ctx: Context, options: EnableOptions): Promise<EnableResult> {
  requireRoot(ctx);
  const store = new ExtensionStore(ctx.root, options.kind);
  return withLock(ctx, async () => {
    await store.assertWritable();
    const image = resolveName(options.name, await store.images(), {
      where: `the store ${store.layout.store}`,
      ...(options.regex ? { regex: true } : {}),
    });
    const policy = await checkPolicy(ctx, store, image, options);
    // An image whose release file fits no name this root's systemd gives it never merges:
    // refused here rather than enabled to fail at every boot. The link name is the one it fits.
    const { requireLinkName } = await import("../domain/image/link-name.js");
    const linkName = await requireLinkName(
      ctx.root,
      await store.imageFile(image),
      image,
      options.kind,
      true,
    );
    const tx = new LinkTransaction(ctx.root);
    const linked = await store.linkProfile(options.profile, image);
    if (linked) {
      tx.created(store.profileLinkPath(options.profile, image));
      ctx.log.info(`enabled ${image} in the ${options.profile} profile`);
    } else {
      ctx.log.info(`${image} is already enabled in the ${options.profile} profile`);
    }
    const result: EnableResult = { image, profile: options.profile, linked, policy };
    if (!options.now) return result;

    const sentinels = await readSentinels(ctx.root);
    if (!isLiveProfile(options.profile, sentinels)) {
      result.notLive = `the node is not booted in the ${options.profile} profile`;
      ctx.log.info(`${image} is enabled but not merged now: ${result.notLive}`);
      return result;
    }
    // systemd takes an earlier dir's entry of the same name (an empty /etc/extensions/NAME
    // masks): refused here with the path, rather than relaying systemd's words after a refresh.
    const [{ maskOf, describeMask }, { dissectingSystemd }] = await Promise.all([
      import("../domain/activate/masking.js"),
      import("../domain/image/host.js"),
    ]);
    const mask = await maskOf(
      ctx.root,
      options.kind,
      await dissectingSystemd(ctx.root),
      store.layout.runtime,
      linkName,
    );
    if (mask) {
      await tx.rollback();
      throw new ExtctlError(
        "incompatible",
        `${image} cannot be merged now: it is ${describeMask(mask)}`,
        {
          hint: `remove ${mask.path} to unmask it (systemd takes the first entry of a name in its search order); the links this command made were undone`,
        },
      );
    }
    // A link of this image under another name (made before the root's systemd changed) would
    // have systemd see it twice: it goes.
    for (const [link, stored] of await store.runtimeImages()) {
      if (stored !== image || link === linkName) continue;
      const path = store.runtimeLinkPath(link);
      const target = await tx.targetOf(path);
      if ((await store.unlinkPath(path)) && target !== undefined) tx.removed(path, target);
    }
    const runtimeLink = store.runtimeLinkPath(linkName);
    const previous = await tx.targetOf(runtimeLink);
    if (await store.linkRuntime(options.profile, image, linkName))
      tx.created(runtimeLink, previous);
    if (linkName !== image)
      ctx.log.info(`linked ${image} as ${runtimeLink}: the name its release file fits`);
    const activation = await activate(ctx, store, tx, options.refresh ?? "auto");
    result.activation = activation;
    if (!activation.refreshed) return result;
    result.merged = isMerged(linkName, mergedNames(activation.merged));
    if (!result.merged) {
      const reason =
        activation.unmerged.find((u) => u.name === linkName)?.reason ?? "systemd did not merge it";
      await tx.rollback();
      throw new ExtctlError("incompatible", `${image} was not merged: ${reason}`, {
        hint: "the links this command made were undone; `extctl check` explains what systemd requires",
      });
    }
    ctx.log.info(`${image} is merged`);
    return result;
  });
}

/** The node's image policy (or --policy) decides before anything is linked. */
async function checkPolicy(
  ctx: Context,
  store: ExtensionStore,
  image: string,
  options: EnableOptions,
): Promise<EnableResult["policy"]> {
  const { admission } = await import("../domain/trust/admission.js");
  const gate = await admission(ctx, {
    ...(options.policy === undefined ? {} : { policy: options.policy }),
    ...(options.trust === undefined ? {} : { trust: options.trust }),
  });
  const summary = { name: gate.policy.policy.name, source: gate.policy.source };
  const verdict = await gate.require(await store.imageFile(image), image);
  if (!verdict) return summary;
  ctx.log.info(`${image}: ${verdict.reason} (policy ${summary.name} from ${summary.source})`);
  return { ...summary, verdict: verdict.reason };
}
