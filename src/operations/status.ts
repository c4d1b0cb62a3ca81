// `status`: what is merged per hierarchy and since when, what is enabled per profile, what is
// linked in /run, the boot profile, and every mismatch between them, each with a reason.
import type { Context } from "../util/context.js";
import { ExtensionStore } from "../domain/store/store.js";
import {
  EXTENSION_KINDS,
  PROFILES,
  type ExtensionKind,
  type Profile,
} from "../domain/store/layout.js";
import {
  readMerged,
  mergedNames,
  systemdNames,
  type MergedHierarchy,
} from "../domain/activate/merged.js";
import { findUnmerged } from "../domain/activate/activation.js";
import { isLiveProfile, readSentinels, type SentinelState } from "../domain/activate/boot-state.js";
import {
  corruptedVerityDevices,
  corruptionOf,
  type CorruptedDevice,
} from "../domain/activate/verity-health.js";

export interface Mismatch {
  name: string;
  problem:
    | "linked-not-merged"
    | "merged-not-linked"
    | "enabled-not-linked"
    | "dangling-link"
    | "verity-corrupted";
  detail: string;
}

export interface KindStatus {
  kind: ExtensionKind;
  store: string;
  merged: MergedHierarchy[];
  enabled: Record<Profile, string[]>;
  linked: string[];
  mismatches: Mismatch[];
}

export interface StatusResult {
  boot: SentinelState;
  /** The image policy enable and boot apply, and where it comes from. */
  policy: { name: string; text: string; source: string };
  kinds: KindStatus[];
}

export interface StatusOptions {
  /** The kinds to report (default: both). */
  kinds?: ExtensionKind[];
}

export async function status(ctx: Context, options: StatusOptions = {}): Promise<StatusResult> {
  // Every read below is independent of the others: issued together, their file system round
  // trips overlap instead of adding up (status is a start-up-bound command).
  const bootState = readSentinels(ctx.root);
  // The kernel's verdict on merged images' verity devices: only for the running system.
  const corrupted = ctx.root.isHostRoot
    ? corruptedVerityDevices(ctx.runner)
    : Promise.resolve([] as CorruptedDevice[]);
  const [boot, resolved, kinds] = await Promise.all([
    bootState,
    import("../domain/trust/policy.js").then(({ resolvePolicy }) => resolvePolicy(ctx)),
    Promise.all(
      (options.kinds ?? EXTENSION_KINDS).map((k) => kindStatus(ctx, k, bootState, corrupted)),
    ),
  ]);
  const policy = {
    name: resolved.policy.name,
    text: resolved.policy.text,
    source: resolved.source,
  };
  return { boot, policy, kinds };
}

/** One kind's merged state, runtime and profile links, and where they disagree. */
async function kindStatus(
  ctx: Context,
  kind: ExtensionKind,
  bootState: Promise<SentinelState>,
  corruptedDevices: Promise<CorruptedDevice[]>,
): Promise<KindStatus> {
  const store = new ExtensionStore(ctx.root, kind);
  const [merged, runtimeImages, profileLinks] = await Promise.all([
    readMerged(ctx.root, kind, ctx.env),
    store.runtimeImages(),
    Promise.all(PROFILES.map((profile) => store.profileLinks(profile))),
  ]);
  const enabled = Object.fromEntries(
    PROFILES.map((profile, i) => [profile, profileLinks[i] as string[]]),
  ) as Record<Profile, string[]>;
  const linked = [...runtimeImages.keys()];
  // The store images the /run links stand for (252-254 link tool.sysext.raw as tool.raw).
  const linkedImages = new Set(runtimeImages.values());
  const mismatches: Mismatch[] = [];
  const mergedSet = mergedNames(merged);
  const linkedSystemdNames = new Set(linked.flatMap(systemdNames));

  for (const name of linked) {
    const info = await store.linkInfo(store.runtimeLinkPath(name));
    if (info && !info.resolves) {
      mismatches.push({
        name,
        problem: "dangling-link",
        detail: `${store.runtimeLinkPath(name)} -> ${info.target} leads to no image`,
      });
    }
  }
  if (merged.length > 0 || linked.length > 0) {
    for (const u of await findUnmerged(ctx, store, merged)) {
      if (!mismatches.some((m) => m.name === u.name))
        mismatches.push({ name: u.name, problem: "linked-not-merged", detail: u.reason });
    }
  }
  for (const name of mergedSet) {
    if (!linkedSystemdNames.has(name)) {
      mismatches.push({
        name,
        problem: "merged-not-linked",
        detail: `merged, but not from ${store.layout.runtime} (another extension dir, or unlinked since the last refresh)`,
      });
    }
  }
  const corrupted = await corruptedDevices;
  for (const name of corrupted.length > 0 ? linked : []) {
    const found = await corruptionOf(corrupted, store.imagePath(name));
    if (found) {
      mismatches.push({
        name,
        problem: "verity-corrupted",
        detail: `the kernel found corrupted data in it (dm-verity device ${found.device} is marked C; reads of that block fail with EIO): it changed after it was signed, or the disk is failing; check it with extctl verify --full ${store.imagePath(name)}, then reinstall it`,
      });
    }
  }
  // The boot state (read beside this) decides which profiles are live.
  const boot = await bootState;
  for (const profile of PROFILES) {
    if (!isLiveProfile(profile, boot)) continue;
    for (const name of enabled[profile]) {
      if (!linkedImages.has(name)) {
        mismatches.push({
          name,
          problem: "enabled-not-linked",
          detail: `enabled in the ${profile} profile but not linked in ${store.layout.runtime}: it loads at the next boot, or now with enable --now`,
        });
      }
    }
  }
  return {
    kind,
    store: store.layout.store,
    merged,
    enabled,
    linked,
    mismatches: mismatches.filter(
      (m, i, all) => all.findIndex((o) => o.name === m.name && o.problem === m.problem) === i,
    ),
  };
}
