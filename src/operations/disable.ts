// `disable NAME --PROFILE [--now]`: remove the profile link (not being enabled is not an error);
// with --now also the /run link that goes through this profile, then refresh. A failed refresh
// puts the links back.
import type { Context } from "../util/context.js";
import { ExtensionStore } from "../domain/store/store.js";
import type { ExtensionKind, Profile } from "../domain/store/layout.js";
import { resolveName } from "../domain/store/names.js";
import { LinkTransaction } from "../domain/activate/transaction.js";
import { activate, type ActivationReport } from "../domain/activate/activation.js";
import type { RefreshMode } from "../domain/activate/refresh.js";
import { requireRoot, withLock } from "./guard.js";

export interface DisableOptions {
  kind: ExtensionKind;
  name: string;
  profile: Profile;
  now?: boolean;
  regex?: boolean;
  refresh?: RefreshMode;
}

export interface DisableResult {
  image: string;
  profile: Profile;
  /** False when it was not enabled in the profile. */
  unlinked: boolean;
  /** Whether the /run link was removed (with --now). */
  unlinkedRuntime: boolean;
  activation?: ActivationReport;
}

export async function disable(ctx: Context, options: DisableOptions): Promise<DisableResult> {
  requireRoot(ctx);
  const store = new ExtensionStore(ctx.root, options.kind);
  return withLock(ctx, async () => {
    await store.assertWritable();
    const inProfile = await store.profileLinks(options.profile);
    const known = [...new Set([...inProfile, ...(await store.images())])];
    let image: string;
    try {
      image = resolveName(options.name, known, {
        where: `the store ${store.layout.store}`,
        ...(options.regex ? { regex: true } : {}),
      });
    } catch (e) {
      // Disabling something that is not there at all is still "not enabled": success.
      if ((e as { code?: string }).code === "not-found" && !options.regex) {
        ctx.log.info(`${options.name} is not enabled in the ${options.profile} profile`);
        return {
          image: options.name,
          profile: options.profile,
          unlinked: false,
          unlinkedRuntime: false,
        };
      }
      throw e;
    }
    const tx = new LinkTransaction(ctx.root);
    const profileLink = store.profileLinkPath(options.profile, image);
    const profileTarget = await tx.targetOf(profileLink);
    const unlinked = await store.unlinkPath(profileLink);
    if (unlinked && profileTarget !== undefined) tx.removed(profileLink, profileTarget);
    ctx.log.info(
      unlinked
        ? `disabled ${image} in the ${options.profile} profile`
        : `${image} is not enabled in the ${options.profile} profile`,
    );
    const result: DisableResult = {
      image,
      profile: options.profile,
      unlinked,
      unlinkedRuntime: false,
    };
    if (!options.now) return result;

    // The /run link may carry another name than the image (systemd 252-254: tool.raw).
    const runtimeLink = store.runtimeLinkPath((await store.runtimeLinkOf(image)) ?? image);
    const runtimeTarget = await store.linkTarget(runtimeLink);
    const rawTarget = await tx.targetOf(runtimeLink);
    // Only the /run link that goes through this profile: one made for another profile stays.
    if (runtimeTarget === profileLink && rawTarget !== undefined) {
      await store.unlinkPath(runtimeLink);
      tx.removed(runtimeLink, rawTarget);
      result.unlinkedRuntime = true;
      result.activation = await activate(ctx, store, tx, options.refresh ?? "auto");
      ctx.log.info(`${image} is no longer merged`);
    } else if (runtimeTarget !== undefined) {
      ctx.log.info(
        `${image} stays merged: ${runtimeLink} comes from ${runtimeTarget}, not the ${options.profile} profile`,
      );
    }
    return result;
  });
}
