// `remove NAME [--now]`: delete exactly that image and its own links in every profile (ours 2).
// With --now the /run link goes first and the refresh must succeed before anything is deleted,
// so a failed refresh leaves the node as it was.
import type { Context } from "../util/context.js";
import { isExtctlError } from "../util/errors.js";
import { ExtensionStore } from "../domain/store/store.js";
import { PROFILES, type ExtensionKind, type Profile } from "../domain/store/layout.js";
import { resolveName, shortName } from "../domain/store/names.js";
import { LinkTransaction } from "../domain/activate/transaction.js";
import { activate, type ActivationReport } from "../domain/activate/activation.js";
import type { RefreshMode } from "../domain/activate/refresh.js";
import { requireRoot, withLock } from "./guard.js";

export interface RemoveOptions {
  kind: ExtensionKind;
  name: string;
  now?: boolean;
  regex?: boolean;
  refresh?: RefreshMode;
}

export interface RemoveResult {
  image: string;
  /** Profiles whose link was removed. */
  profiles: Profile[];
  unlinkedRuntime: boolean;
  /** Set when the image was an extension installed by name: its kept versions went too. */
  versionsRemoved?: boolean;
  activation?: ActivationReport;
}

export async function remove(ctx: Context, options: RemoveOptions): Promise<RemoveResult> {
  requireRoot(ctx);
  const store = new ExtensionStore(ctx.root, options.kind);
  return withLock(ctx, async () => {
    await store.assertWritable();
    const image = resolveName(options.name, await store.images(), {
      where: `the store ${store.layout.store}`,
      ...(options.regex ? { regex: true } : {}),
    });
    const result: RemoveResult = { image, profiles: [], unlinkedRuntime: false };
    const tx = new LinkTransaction(ctx.root);
    // The /run link may carry another name than the image (systemd 252-254: tool.raw).
    const runtimeLink = store.runtimeLinkPath((await store.runtimeLinkOf(image)) ?? image);
    const runtimeTarget = await tx.targetOf(runtimeLink);
    if (runtimeTarget !== undefined) {
      await store.unlinkPath(runtimeLink);
      tx.removed(runtimeLink, runtimeTarget);
      result.unlinkedRuntime = true;
      if (options.now) {
        result.activation = await activate(ctx, store, tx, options.refresh ?? "auto");
      } else {
        ctx.log.info(
          `${image} stays merged until the next refresh or reboot (use --now to unmerge it now)`,
        );
      }
    }
    for (const profile of PROFILES) {
      try {
        if (await store.unlinkPath(store.profileLinkPath(profile, image)))
          result.profiles.push(profile);
      } catch (e) {
        if (!isExtctlError(e) || e.code !== "exists") throw e;
        ctx.log.warn(e.message);
      }
    }
    await store.deleteImage(image);
    // An extension installed by name goes with all its versions.
    const { VersionedStore } = await import("../domain/store/versions.js");
    const versions = new VersionedStore(store, (m) => ctx.log.warn(m));
    const name = shortName(image);
    if (image === `${name}.raw` && (await versions.read(name).catch(() => undefined))) {
      await versions.removeAll(name);
      result.versionsRemoved = true;
    }
    ctx.log.info(
      `removed ${image}` +
        (result.profiles.length ? ` and its links in ${result.profiles.join(", ")}` : ""),
    );
    return result;
  });
}
