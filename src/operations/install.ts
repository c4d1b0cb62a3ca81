// `install URI`: fetch an image into the store (from any registered source). An image with the same
// name is replaced atomically and keeps its profile links, so upgrades keep their enablement.
import type { Context } from "../util/context.js";
import { ExtensionStore } from "../domain/store/store.js";
import type { ExtensionKind, Profile } from "../domain/store/layout.js";
import { fetchIntoStore } from "../domain/sources/index.js";
import { sourceOf } from "../domain/sources/uri.js";
import { canonicalSourceUri } from "../domain/sources/source-registry.js";
import { checkSha256Option } from "../domain/sources/stream-to-store.js";
import { requireRoot, withLock } from "./guard.js";

export interface InstallOptions {
  kind: ExtensionKind;
  uri: string;
  sha256?: string;
  /** Store under this file name instead of the source's. */
  name?: string;
  caCerts?: string[];
  platform?: string;
  creds?: string;
  insecureRegistries?: string[];
  /** Give up on a server that sends less than 1 KiB in this many milliseconds (default 60 s). */
  timeoutMs?: number;
  /** Hard cap on what the image (or an OCI image's layers) may expand to. */
  maxBytes?: number;
  /** Let an OCI classic image replace installed images other than its own (see docs/commands.md). */
  replace?: boolean;
}

export interface InstalledImage {
  name: string;
  path: string;
  size: number;
  sha256: string;
  replaced: boolean;
  /** Profiles the image was already enabled in (kept across the replacement). */
  profiles: Profile[];
}

export interface InstallResult {
  kind: ExtensionKind;
  uri: string;
  images: InstalledImage[];
}

export async function install(ctx: Context, given: InstallOptions): Promise<InstallResult> {
  // docker:// and container:// (kairos-sdk's spellings) are oci://, here and in the result.
  const options = { ...given, uri: canonicalSourceUri(given.uri) };
  sourceOf(options.uri);
  const sha256 = checkSha256Option(options.sha256);
  requireRoot(ctx);
  const store = new ExtensionStore(ctx.root, options.kind);
  return withLock(ctx, async () => {
    const storeDir = await store.ensureStore();
    const before = new Set(await store.images());
    const fetched = await fetchIntoStore(ctx, {
      uri: options.uri,
      kind: options.kind,
      storeDir,
      ...(sha256 === undefined ? {} : { sha256 }),
      ...(options.name === undefined ? {} : { name: options.name }),
      ...(options.caCerts ? { caCerts: options.caCerts } : {}),
      ...(options.platform ? { platform: options.platform } : {}),
      ...(options.creds ? { creds: options.creds } : {}),
      ...(options.insecureRegistries ? { insecureRegistries: options.insecureRegistries } : {}),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
      ...(options.replace ? { replace: true } : {}),
    });
    const images: InstalledImage[] = [];
    for (const image of fetched) {
      const replaced = before.has(image.name);
      const profiles = await store.enabledIn(image.name);
      images.push({ ...image, path: store.imagePath(image.name), replaced, profiles });
      ctx.log.info(
        `${replaced ? "replaced" : "installed"} ${image.name} in ${store.layout.store}` +
          (replaced && profiles.length > 0 ? ` (still enabled in: ${profiles.join(", ")})` : ""),
      );
    }
    return { kind: options.kind, uri: options.uri, images };
  });
}
