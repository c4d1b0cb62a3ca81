// The steps install-by-name, upgrade and rollback share (issue 14): reading the catalogs once per
// command, fetching a chosen version into the versions directory, judging it (the node's policy,
// the `check` rules) before anything switches, and switching with a confirmed merge that goes
// back to the old version when the new one does not merge.
import { mkdir, readdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import type { Context } from "../../util/context.js";
import { ExtctlError, messageOf } from "../../util/errors.js";
import { tempPathBeside } from "../../util/atomic.js";
import { isImageName } from "../store/names.js";
import {
  storeFileName,
  versionFileName,
  type VersionEntry,
  type VersionRecord,
  type VersionedStore,
} from "../store/versions.js";
import type { CatalogFetchOptions, LoadedCatalogs } from "../catalog/fetch.js";
import type { Resolution } from "../catalog/resolve.js";
import type { FetchedImage } from "../sources/types.js";
import { LinkTransaction } from "../activate/transaction.js";
import type { RefreshMode } from "../activate/refresh.js";

/** How to reach catalogs and registries: the same options for install, upgrade and versions. */
export interface NetOptions {
  catalogs?: string[];
  caCerts?: string[];
  creds?: string;
  insecureRegistries?: string[];
  timeoutMs?: number;
  maxBytes?: number;
  /** --catalog-policy: `signed` refuses a catalog without a valid signature. */
  catalogPolicy?: "any" | "signed";
  /** Extra trusted certificates (image signatures and catalog signatures). */
  trust?: string[];
}

/** `NAME`, `NAME@VERSION` or `NAME@CONSTRAINT`, with --version as the other way to say it. */
export function parseRequest(
  spec: string,
  version: string | undefined,
): { name: string; requested?: string } {
  const at = spec.indexOf("@");
  const name = at < 0 ? spec : spec.slice(0, at);
  const inline = at < 0 ? undefined : spec.slice(at + 1).trim();
  if (name.length === 0)
    throw new ExtctlError("usage", `${JSON.stringify(spec)} has no extension name`, {
      exitCode: 2,
    });
  if (inline !== undefined && inline.length === 0)
    throw new ExtctlError("usage", `${JSON.stringify(spec)} has an empty version after @`, {
      exitCode: 2,
    });
  if (inline !== undefined && version !== undefined && inline !== version)
    throw new ExtctlError(
      "usage",
      `${JSON.stringify(spec)} and --version ${JSON.stringify(version)} ask for different versions`,
      { exitCode: 2 },
    );
  const requested = inline ?? version;
  return requested === undefined ? { name } : { name, requested };
}

/** What the catalog module needs from a command's options. */
export function catalogFetchOptions(net: NetOptions, remember: boolean): CatalogFetchOptions {
  return {
    ...(net.catalogs && net.catalogs.length > 0 ? { urls: net.catalogs } : {}),
    ...(net.caCerts ? { caCerts: net.caCerts } : {}),
    ...(net.creds ? { creds: net.creds } : {}),
    ...(net.insecureRegistries ? { insecureRegistries: net.insecureRegistries } : {}),
    ...(net.timeoutMs === undefined ? {} : { timeoutMs: net.timeoutMs }),
    ...(net.catalogPolicy ? { policy: net.catalogPolicy } : {}),
    ...(net.trust ? { trust: net.trust } : {}),
    remember,
  };
}

/**
 * Loads catalogs once per distinct URL list in one command (upgrade --all of extensions that
 * were installed from different catalogs reads each list once).
 */
export class CatalogCache {
  private readonly loaded = new Map<string, Promise<LoadedCatalogs>>();

  constructor(
    private readonly ctx: Context,
    private readonly net: NetOptions,
    private readonly remember: boolean,
  ) {}

  get(urls: readonly string[]): Promise<LoadedCatalogs> {
    const chosen = this.net.catalogs && this.net.catalogs.length > 0 ? this.net.catalogs : urls;
    const key = JSON.stringify(chosen);
    let pending = this.loaded.get(key);
    if (!pending) {
      pending = import("../catalog/fetch.js").then(({ loadCatalogs }) =>
        loadCatalogs(
          this.ctx,
          catalogFetchOptions({ ...this.net, catalogs: [...chosen] }, this.remember),
        ),
      );
      this.loaded.set(key, pending);
    }
    return pending;
  }
}

/** This node's architecture in the catalog's (Go) names, and its machine id for rollouts. */
export async function nodeIdentity(ctx: Context): Promise<{ arch: string; machineId?: string }> {
  const [{ hostFacts }, { goarch }, { readMachineId }] = await Promise.all([
    import("../image/host.js"),
    import("../catalog/resolve.js"),
    import("../catalog/machine-id.js"),
  ]);
  const host = await hostFacts(ctx.root, ctx.env);
  // An unreadable machine-id (a FIFO, too large) only puts the node in no rollout wave.
  const machineId = await readMachineId(ctx.root).catch(() => undefined);
  return { arch: goarch(host.architecture), ...(machineId ? { machineId } : {}) };
}

/** A new record for an extension installed by name. */
export function newRecord(
  name: string,
  requested: string | undefined,
  pinned: boolean,
  catalogs: readonly string[],
): VersionRecord {
  return {
    format: 1,
    name,
    ...(requested === undefined ? {} : { requested }),
    pinned,
    catalogs: [...catalogs],
    versions: [],
    rolledBack: [],
  };
}

/**
 * Fetches the chosen version into the extension's versions directory, unless a file of it is
 * already there (then nothing is downloaded; the caller re-admits it, see version-refusal.ts).
 * The record is not written.
 */
export async function fetchVersion(
  ctx: Context,
  versions: VersionedStore,
  record: VersionRecord,
  resolution: Resolution,
  net: NetOptions,
): Promise<{ entry: VersionEntry; downloaded: boolean }> {
  const file = versionFileName(resolution.version, resolution.reference);
  const known = record.versions.find((e) => e.file === file);
  if (known && (await versions.has(record.name, known))) return { entry: known, downloaded: false };
  const entry: VersionEntry = {
    version: resolution.version,
    file,
    reference: resolution.reference,
    catalog: resolution.catalog,
    installedAt: new Date().toISOString(),
  };
  const dir = await versions.ensureDir(record.name);
  // A staging dir of our own: the pull names its file after the image, and nothing else of the
  // versions dir must be touched by it. A killed run leaves only a `.extctl-` dir to sweep.
  const staging = tempPathBeside(path.join(dir, "fetch"), "fetch");
  await mkdir(staging, { mode: 0o700 }); // the umask only narrows 0700
  try {
    const { fetchIntoStore } = await import("../sources/index.js");
    const fetched = await fetchIntoStore(ctx, {
      uri: resolution.reference,
      kind: versions.store.kind,
      storeDir: staging,
      // The store knows it as NAME.sysext.raw: the merge check at install judges that name.
      mergeName: storeFileName(record.name),
      ...(net.caCerts ? { caCerts: net.caCerts } : {}),
      ...(net.creds ? { creds: net.creds } : {}),
      ...(net.insecureRegistries ? { insecureRegistries: net.insecureRegistries } : {}),
      ...(net.timeoutMs === undefined ? {} : { timeoutMs: net.timeoutMs }),
      ...(net.maxBytes === undefined ? {} : { maxBytes: net.maxBytes }),
    });
    const images = (await readdir(staging)).filter(isImageName);
    if (fetched.length !== 1 || images.length !== 1)
      throw new ExtctlError(
        "format",
        `${resolution.reference} (${record.name} ${resolution.version}) holds ${fetched.length} images; a catalog entry must hold exactly one`,
      );
    // Hashed while it streamed in: checked again before this version becomes current later.
    entry.sha256 = (fetched[0] as FetchedImage).sha256;
    await rename(path.join(staging, images[0] as string), path.join(dir, file));
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return { entry, downloaded: true };
}

/** Deletes a version's file that was fetched but refused (never the current one). */
export async function discardVersion(
  versions: VersionedStore,
  name: string,
  entry: VersionEntry,
): Promise<void> {
  await rm(await versions.store.writeHost(versions.filePath(name, entry)), { force: true });
}

export interface SwitchOutcome {
  /** Whether systemd was asked to refresh (the extension is linked for the booted profile). */
  refreshed: boolean;
  merged?: boolean;
}

/**
 * Makes `to` current; with `now`, refreshes when the extension is linked in /run and confirms
 * it merged. When it did not, `from` is made current again and refreshed, and the error says
 * which version failed and why.
 */
export async function switchVersion(
  ctx: Context,
  versions: VersionedStore,
  name: string,
  from: VersionEntry | undefined,
  to: VersionEntry,
  options: { now?: boolean; refresh?: RefreshMode },
): Promise<SwitchOutcome> {
  await versions.switchTo(name, to);
  const file = storeFileName(name);
  const store = versions.store;
  if (!options.now || !(await store.runtimeLinks()).includes(file)) return { refreshed: false };
  const [{ activate }, { isMerged, mergedNames }] = await Promise.all([
    import("../activate/activation.js"),
    import("../activate/merged.js"),
  ]);
  const mode = options.refresh ?? "auto";
  let reason: string;
  try {
    const report = await activate(ctx, store, new LinkTransaction(ctx.root), mode);
    if (!report.refreshed) return { refreshed: false };
    if (isMerged(file, mergedNames(report.merged))) return { refreshed: true, merged: true };
    reason = report.unmerged.find((u) => u.name === file)?.reason ?? "systemd did not merge it";
  } catch (e) {
    reason = messageOf(e);
  }
  if (!from) {
    throw new ExtctlError("incompatible", `${name} ${to.version} did not merge: ${reason}`);
  }
  const back = `; ${await restoreVersion(ctx, versions, name, from, mode)}`;
  throw new ExtctlError("incompatible", `${name} ${to.version} did not merge: ${reason}${back}`, {
    hint: "`extctl check` on the new version explains what systemd requires",
  });
}

/**
 * Makes `from` current again and refreshes, after its successor did not merge or failed its
 * health check; says in a clause what came of it (merged again, or not, or the refresh failed).
 */
export async function restoreVersion(
  ctx: Context,
  versions: VersionedStore,
  name: string,
  from: VersionEntry,
  mode: RefreshMode = "auto",
): Promise<string> {
  const [{ activate }, { isMerged, mergedNames }] = await Promise.all([
    import("../activate/activation.js"),
    import("../activate/merged.js"),
  ]);
  await versions.switchTo(name, from);
  try {
    const again = await activate(ctx, versions.store, new LinkTransaction(ctx.root), mode);
    return isMerged(storeFileName(name), mergedNames(again.merged))
      ? `${name} ${from.version} is current and merged again`
      : `${name} ${from.version} is current again but did not merge either`;
  } catch (e) {
    return `${name} ${from.version} is current again, but refreshing failed: ${messageOf(e)}`;
  }
}
