// `list [--PROFILE]`: what is installed in the store (or enabled in one profile), with where each
// image is enabled, whether it is linked in /run and whether systemd has it merged now.
import type { Context } from "../util/context.js";
import { ExtensionStore } from "../domain/store/store.js";
import { PROFILES, type ExtensionKind, type Profile } from "../domain/store/layout.js";
import { isMerged, mergedNames, readMerged } from "../domain/activate/merged.js";

export interface ListOptions {
  kind: ExtensionKind;
  profile?: Profile;
}

export interface ListedImage {
  name: string;
  /** Node path of the image (in a profile listing: where the link points). */
  path: string;
  /** False for a profile link whose image is gone. */
  present: boolean;
  profiles: Profile[];
  /** Linked in /run/extensions (or /run/confexts). */
  linked: boolean;
  merged: boolean;
}

export interface ListResult {
  kind: ExtensionKind;
  profile?: Profile;
  images: ListedImage[];
}

export async function list(ctx: Context, options: ListOptions): Promise<ListResult> {
  const store = new ExtensionStore(ctx.root, options.kind);
  const [stored, runtime, merged, ...byProfile] = await Promise.all([
    store.images(),
    store.runtimeLinks(),
    readMerged(ctx.root, options.kind),
    ...PROFILES.map((p) => store.profileLinks(p)),
  ]);
  const enabled = new Map<string, Profile[]>();
  PROFILES.forEach((profile, i) => {
    for (const name of byProfile[i] ?? [])
      enabled.set(name, [...(enabled.get(name) ?? []), profile]);
  });
  const runtimeSet = new Set(runtime);
  const mergedSet = mergedNames(merged);
  const storedSet = new Set(stored);
  const names = options.profile ? (byProfile[PROFILES.indexOf(options.profile)] ?? []) : stored;
  const images = names.map((name) => ({
    name,
    path: options.profile ? store.profileLinkPath(options.profile, name) : store.imagePath(name),
    present: storedSet.has(name),
    profiles: enabled.get(name) ?? [],
    linked: runtimeSet.has(name),
    merged: runtimeSet.has(name) && isMerged(name, mergedSet),
  }));
  return { kind: options.kind, ...(options.profile ? { profile: options.profile } : {}), images };
}
