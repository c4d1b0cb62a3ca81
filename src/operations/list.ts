// `list [--PROFILE]`: what is installed in the store (or enabled in one profile), with where each
// image is enabled, whether it is linked in /run and merged now, its version and format, whether
// it is signed and whether this host would merge it. `--verify` adds the checked signer and
// whether the node trusts it (that loads the signature code, so plain `list` stays light).
import type { Context } from "../util/context.js";
import { ExtensionStore } from "../domain/store/store.js";
import { PROFILES, type ExtensionKind, type Profile } from "../domain/store/layout.js";
import { isMerged, mergedNames, readMerged } from "../domain/activate/merged.js";
import { existsSync, statSync } from "node:fs";
import {
  summarizeImageDetail,
  summaryHostKey,
  type ImageSummary,
} from "../domain/image/summary.js";
import { sidecarPaths } from "../domain/image/image.js";
import {
  SummaryCache,
  type CachedSummary,
  type FileIdentity,
} from "../domain/store/summary-cache.js";

export interface ListOptions {
  kind: ExtensionKind;
  profile?: Profile;
  /** Check each image's signature against the node's trust store (and these extra certs). */
  verify?: boolean;
  trust?: string[];
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
  /** SYSEXT_VERSION_ID / CONFEXT_VERSION_ID, else VERSION_ID of the release file. */
  version?: string;
  /** e.g. "ddi/erofs", "squashfs". */
  format?: string;
  /** A signature partition or .roothash.p7s sidecar is present (not checked). */
  signed?: boolean;
  /** Would systemd merge it on this root (release file rules)? */
  compatible?: boolean;
  /** Why not, in a few words. */
  reason?: string;
  /**
   * With --verify: the kernel flagged the image's merged dm-verity device as corrupted (a block
   * failed its hash: the image changed after signing); `extctl verify --full` names the block.
   */
  corrupted?: boolean;
  /** With --verify: the trust check's outcome and signer. */
  trust?: { outcome: string; trusted: boolean; signer?: string; message: string };
}

/**
 * An entry extctl does not manage that systemd takes from its search dirs: a directory extension
 * or (systemd 256+) a version directory NAME.raw.v/ with the version systemd picks in it.
 */
export interface SearchDirEntry {
  /** The name systemd gives it. */
  name: string;
  /** Node path of the entry. */
  path: string;
  type: "directory" | "versioned";
  /** A version directory: the file systemd picks and its version. */
  picked?: { file: string; version: string };
  version?: string;
  /** Would systemd merge it (the verdict `check` gives)? */
  compatible: boolean;
  reason?: string;
  merged: boolean;
}

export interface ListResult {
  kind: ExtensionKind;
  profile?: Profile;
  images: ListedImage[];
  /** Directory extensions and version directories in systemd's search dirs (store listing only). */
  others?: SearchDirEntry[];
}

/** Runs `work` over `items` with at most `limit` in flight (images are read concurrently). */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i] as T);
    }
  });
  await Promise.all(runners);
  return results;
}

export async function list(ctx: Context, options: ListOptions): Promise<ListResult> {
  const store = new ExtensionStore(ctx.root, options.kind);
  const [readable, runtime, merged, ...byProfile] = await Promise.all([
    store.readableImages(),
    store.runtimeImages(),
    readMerged(ctx.root, options.kind, ctx.env),
    ...PROFILES.map((p) => store.profileLinks(p)),
  ]);
  // A FIFO, device or dangling link in the store is named and left out: reading it could hang.
  for (const s of readable.skipped) ctx.log.warn(`skipping ${s.reason}`);
  const files = new Map(readable.images.map((i) => [i.name, i.file]));
  const stored = [...files.keys()];
  const enabled = new Map<string, Profile[]>();
  PROFILES.forEach((profile, i) => {
    for (const name of byProfile[i] ?? [])
      enabled.set(name, [...(enabled.get(name) ?? []), profile]);
  });
  // Store image -> its /run link: on systemd 252-254 tool.sysext.raw is linked as tool.raw.
  const linkOf = new Map<string, string>();
  for (const [link, image] of runtime)
    if (!linkOf.has(image) || link === image) linkOf.set(image, link);
  const mergedSet = mergedNames(merged);
  const storedSet = new Set(stored);
  const names = options.profile ? (byProfile[PROFILES.indexOf(options.profile)] ?? []) : stored;
  const verifier = options.verify ? await makeVerifier(ctx, options.trust ?? []) : undefined;
  // The kernel's verdict on merged images (the running system only): --verify reports it.
  const corrupted =
    verifier && ctx.root.isHostRoot
      ? await import("../domain/activate/verity-health.js").then((m) =>
          m.corruptedVerityDevices(ctx.runner).then((devices) => ({ m, devices })),
        )
      : undefined;
  // A sidecar beside an image right in the store dir is looked up in its listing (no syscall,
  // no path parsing: this runs per image); one that is listed, or beside an image elsewhere
  // (a store entry that is a link), is checked on disk.
  const listing = readable.listing;
  const sidecarExists = (file: string): boolean => {
    if (listing === undefined) return existsSync(file);
    const slash = file.lastIndexOf("/");
    const inStoreDir = slash === listing.dir.length && file.startsWith(listing.dir);
    return inStoreDir && !listing.names.has(file.slice(slash + 1)) ? false : existsSync(file);
  };
  // The columns of an unchanged image come from the store's cache; --verify reads every image,
  // as enable, boot and check do: the cache never stands in for a security decision.
  const cache =
    verifier || stored.length === 0
      ? undefined
      : await loadCache(ctx, store).catch(() => undefined);

  // One synchronous pass: an image the cache knows costs a stat and a look-up, no promise; the
  // rest (not cached, changed, or --verify) are read concurrently afterwards.
  const images: ListedImage[] = [];
  const toRead: { entry: ListedImage; hostPath: string; id?: FileIdentity }[] = [];
  for (const name of names) {
    const entry: ListedImage = {
      name,
      path: options.profile ? store.profileLinkPath(options.profile, name) : store.imagePath(name),
      present: storedSet.has(name),
      profiles: enabled.get(name) ?? [],
      linked: linkOf.has(name),
      merged: linkOf.has(name) && isMerged(linkOf.get(name) as string, mergedSet),
    };
    images.push(entry);
    if (!entry.present) continue;
    const hostPath = files.get(name) as string;
    const id = cache ? fileIdentity(hostPath) : undefined;
    const cached = id && cache?.lookup(name, id);
    if (cached) Object.assign(entry, describe(fromCached(cached, hostPath, sidecarExists)));
    else toRead.push({ entry, hostPath, ...(id ? { id } : {}) });
  }
  await mapLimited(toRead, 16, async ({ entry, hostPath, id }) => {
    Object.assign(entry, await readColumns(ctx, cache, entry.name, hostPath, options.kind, id));
    if (verifier) entry.trust = await verifier(hostPath);
    if (corrupted && entry.merged && (await corrupted.m.corruptionOf(corrupted.devices, hostPath)))
      entry.corrupted = true;
  });
  await markMasked(ctx, store, images, linkOf);
  if (cache && (await cache.save(storedSet)))
    ctx.log.debug(`updated the summary cache in ${store.layout.store}`);
  const others = options.profile ? [] : await searchDirOthers(ctx, options.kind, mergedSet);
  return {
    kind: options.kind,
    ...(options.profile ? { profile: options.profile } : {}),
    images,
    ...(others.length > 0 ? { others } : {}),
  };
}

/**
 * The directory extensions and version directories in systemd's search dirs, each with check's
 * verdict (a version directory: for the version systemd picks). An empty directory is a mask,
 * not an extension: list names it on the image it masks.
 */
async function searchDirOthers(
  ctx: Context,
  kind: ExtensionKind,
  mergedSet: ReadonlySet<string>,
): Promise<SearchDirEntry[]> {
  const [{ searchEntries }, { dissectingSystemd }] = await Promise.all([
    import("../domain/activate/search-entries.js"),
    import("../domain/image/host.js"),
  ]);
  const systemd = await dissectingSystemd(ctx.root);
  const entries = (await searchEntries(ctx.root, kind, systemd, { directoriesOnly: true })).filter(
    (e) => e.type !== "image" && !e.empty,
  );
  if (entries.length === 0) return [];
  // check's code is loaded only when there is something to judge: a plain list stays light.
  const { checkImage } = await import("./check.js");
  const out: SearchDirEntry[] = [];
  for (const e of entries) {
    const picked = e.picked ? { file: e.picked.file, version: e.picked.version } : undefined;
    const row = {
      name: e.name,
      path: e.path,
      type: e.type as SearchDirEntry["type"],
      ...(picked ? { picked, version: picked.version } : {}),
    };
    if (e.skipped !== undefined) {
      out.push({ ...row, compatible: false, reason: e.skipped, merged: false });
      continue;
    }
    try {
      const verdict = await checkImage(ctx, {
        image: await ctx.root.readPath(e.path),
        kind,
        systemd,
        searchDir: e.dir,
      });
      out.push({
        ...row,
        compatible: verdict.compatible,
        ...(verdict.reason !== undefined ? { reason: verdict.reason } : {}),
        merged: verdict.compatible && mergedSet.has(e.name),
      });
    } catch (err) {
      out.push({ ...row, compatible: false, reason: (err as Error).message, merged: false });
    }
  }
  return out;
}

async function loadCache(ctx: Context, store: ExtensionStore): Promise<SummaryCache> {
  const [dir, host] = await Promise.all([
    store.root.readPath(store.layout.store),
    summaryHostKey(ctx),
  ]);
  const cache = await SummaryCache.load(dir, host);
  if (cache.miss === "untrusted") {
    const { ignoredState } = await import("../util/owned-state.js");
    ctx.log.warn(ignoredState(`the summary cache ${cache.distrust ?? ""}`));
  } else if (cache.miss && cache.miss !== "absent")
    ctx.log.debug(`the summary cache in ${store.layout.store} is ${cache.miss}; rebuilding it`);
  return cache;
}

/** What the summary cache keys an image file by (see FileIdentity). */
function fileIdentity(hostPath: string): FileIdentity {
  const st = statSync(hostPath);
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
}

/**
 * The list columns of an image the cache does not know (or of every image without a cache),
 * read from the image; cached when its file did not change while it was read.
 */
async function readColumns(
  ctx: Context,
  cache: SummaryCache | undefined,
  name: string,
  hostPath: string,
  kind: ExtensionKind,
  id: FileIdentity | undefined,
): Promise<Partial<ListedImage>> {
  const detail = await summarizeImageDetail(ctx, hostPath, kind);
  if (cache && id) {
    const s = detail.summary;
    const summary: CachedSummary = {
      ...(s.version !== undefined ? { version: s.version } : {}),
      format: s.format,
      signaturePartition: detail.signaturePartition,
      sidecarCounts: detail.sidecarCounts,
      compatible: s.compatible,
      ...(s.reason !== undefined ? { reason: s.reason } : {}),
    };
    // Stat again after reading: an image replaced meanwhile is not cached under the old key.
    const after = fileIdentity(hostPath);
    if (
      after.ino === id.ino &&
      after.mtimeMs === id.mtimeMs &&
      after.ctimeMs === id.ctimeMs &&
      settled(id.mtimeMs, id.ctimeMs)
    )
      cache.put(name, id, summary);
  }
  return describe(detail.summary);
}

/**
 * File times come from the kernel's coarse clock (a few ms per tick): a file written twice
 * within one tick keeps its mtime and ctime, so one changed in the last seconds (or dated in
 * the future) is read again next time rather than cached (git's "racily clean" entries).
 */
const SETTLE_MS = 2000;

function settled(mtimeMs: number, ctimeMs: number): boolean {
  return Date.now() - Math.max(mtimeMs, ctimeMs) >= SETTLE_MS;
}

function fromCached(
  c: CachedSummary,
  hostPath: string,
  sidecarExists: (file: string) => boolean,
): ImageSummary {
  // A sidecar signature is not part of the image's stat: looked up each time.
  const signed =
    c.signaturePartition || (c.sidecarCounts && sidecarExists(sidecarPaths(hostPath).signature));
  return {
    ...(c.version !== undefined ? { version: c.version } : {}),
    format: c.format,
    signed,
    compatible: c.compatible,
    ...(c.reason !== undefined ? { reason: c.reason } : {}),
  };
}

function describe(summary: ImageSummary): Partial<ListedImage> {
  return {
    ...(summary.version !== undefined ? { version: summary.version } : {}),
    format: summary.format,
    signed: summary.signed,
    compatible: summary.compatible,
    ...(summary.reason !== undefined ? { reason: summary.reason } : {}),
  };
}

async function makeVerifier(ctx: Context, extra: string[]) {
  const [{ loadTrustStore }, { checkImageTrust }] = await Promise.all([
    import("../domain/trust/truststore.js"),
    import("../domain/trust/image-trust.js"),
  ]);
  const trustStore = await loadTrustStore(ctx, extra);
  return async (hostPath: string): Promise<NonNullable<ListedImage["trust"]>> => {
    try {
      const trust = await checkImageTrust(ctx, hostPath, trustStore);
      const signer = trust.signature?.signer?.subject ?? trust.signature?.embeddedSigner?.subject;
      return {
        outcome: trust.outcome,
        trusted: trust.outcome === "ok" && trust.protection === "signed",
        ...(signer !== undefined ? { signer } : {}),
        message: trust.message,
      };
    } catch (e) {
      return { outcome: "error", trusted: false, message: (e as Error).message };
    }
  };
}

/**
 * systemd's masking (domain/activate/masking.ts): an image whose name an earlier search dir
 * holds (an empty /etc/extensions/NAME, or another image of that name) does not merge, whatever
 * its release file says. Looked at only when such a dir has entries, so a plain list stays light.
 */
async function markMasked(
  ctx: Context,
  store: ExtensionStore,
  images: ListedImage[],
  linkOf: ReadonlyMap<string, string>,
): Promise<void> {
  if (images.length === 0) return;
  const [{ masksBefore, describeMask }, { dissectingSystemd }, { linkNameCandidates }, compat] =
    await Promise.all([
      import("../domain/activate/masking.js"),
      import("../domain/image/host.js"),
      import("../domain/image/link-name.js"),
      import("../domain/image/compat.js"),
    ]);
  const systemd = await dissectingSystemd(ctx.root);
  const masks = await masksBefore(ctx.root, store.kind, systemd, store.layout.runtime);
  if (masks.size === 0) return;
  for (const image of images) {
    if (!image.present) continue;
    const linked = linkOf.get(image.name);
    const names = linked ? [linked] : linkNameCandidates(image.name, store.kind, systemd);
    for (const link of names) {
      const mask = masks.get(compat.imageName(link, store.kind, systemd));
      if (!mask) continue;
      // What systemd merged under that name is the masking entry, not this image.
      image.compatible = false;
      image.merged = false;
      image.reason = describeMask(mask);
      break;
    }
  }
}
