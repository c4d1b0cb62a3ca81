// `versions NAME`: the versions of an extension installed by name (which is current, which was
// last merged), the profiles that use it, and what the catalogs offer now.
import type { Context } from "../util/context.js";
import { ExtctlError, isExtctlError } from "../util/errors.js";
import { ExtensionStore } from "../domain/store/store.js";
import type { ExtensionKind, Profile } from "../domain/store/layout.js";
import { shortName } from "../domain/store/names.js";
import { VersionedStore, storeFileName } from "../domain/store/versions.js";
import { CatalogCache, nodeIdentity, type NetOptions } from "../domain/lifecycle/steps.js";

export interface VersionsOptions extends NetOptions {
  kind: ExtensionKind;
  name: string;
  /** Do not read the catalogs (offline). */
  installedOnly?: boolean;
}

export interface InstalledVersion {
  version: string;
  reference: string;
  catalog?: string;
  installedAt: string;
  current: boolean;
  previous: boolean;
  merged: boolean;
  /** Boot assessment: on trial until `extctl bless`, with the boots it may still try. */
  pending: boolean;
  triesLeft?: number;
  /** The version last blessed (boot-complete.target reached while it was current). */
  blessed: boolean;
}

export interface OfferedVersion {
  version: string;
  reference?: string;
  catalog: string;
  rollout?: { percent: number };
  installed: boolean;
}

export interface VersionsResult {
  name: string;
  image: string;
  requested?: string;
  pinned: boolean;
  current?: string;
  profiles: Profile[];
  linkedInRuntime: boolean;
  installed: InstalledVersion[];
  /** Boot assessment: the version on trial, and the boots that fell back from one. */
  pending?: { version: string; previous: string; triesLeft: number; tries: number; since: string };
  blessed?: string;
  bootFallbacks: { at: string; from: string; to: string; reason: string }[];
  healthCheck?: string[];
  /** Undefined when the catalogs were not read (or none could be). */
  offered?: OfferedVersion[];
  catalogError?: string;
}

export async function listVersions(
  ctx: Context,
  options: VersionsOptions,
): Promise<VersionsResult> {
  const store = new ExtensionStore(ctx.root, options.kind);
  const versions = new VersionedStore(store, (m) => ctx.log.warn(m));
  const installed = await versions.names();
  const name = installed.includes(options.name) ? options.name : shortName(options.name);
  const record = await versions.read(name);
  if (!record)
    throw new ExtctlError("not-found", `${name} was not installed by name, so it has no versions`, {
      hint: `installed by name: ${installed.join(", ") || "none"}`,
    });
  await versions.reconcile(record);
  const current = await versions.current(record);
  const image = storeFileName(name);
  const result: VersionsResult = {
    name,
    image,
    ...(record.requested === undefined ? {} : { requested: record.requested }),
    pinned: record.pinned,
    ...(current ? { current: current.version } : {}),
    profiles: await store.enabledIn(image),
    linkedInRuntime: (await store.runtimeLinks()).includes(image),
    installed: [...record.versions]
      .sort((a, b) => b.installedAt.localeCompare(a.installedAt))
      .map((e) => ({
        version: e.version,
        reference: e.reference,
        ...(e.catalog === undefined ? {} : { catalog: e.catalog }),
        installedAt: e.installedAt,
        current: e.file === current?.file,
        // A switch killed after its record write leaves `previous` naming the current version.
        previous: e.version === record.previous && e.file !== current?.file,
        merged: e.version === record.merged,
        pending: e.file === record.pending?.file,
        ...(e.file === record.pending?.file ? { triesLeft: record.pending.triesLeft } : {}),
        blessed: e.version === record.blessed,
      })),
    ...(record.pending
      ? {
          pending: {
            version: record.pending.version,
            previous: record.pending.previous,
            triesLeft: record.pending.triesLeft,
            tries: record.pending.tries,
            since: record.pending.since,
          },
        }
      : {}),
    ...(record.blessed === undefined ? {} : { blessed: record.blessed }),
    bootFallbacks: record.bootFallbacks ?? [],
    ...(record.healthCheck ? { healthCheck: record.healthCheck } : {}),
  };
  if (options.installedOnly) return result;
  try {
    const [{ catalogs }, identity, { offeredVersions }] = await Promise.all([
      new CatalogCache(ctx, options, false).get(record.catalogs),
      nodeIdentity(ctx),
      import("../domain/catalog/resolve.js"),
    ]);
    const have = new Set(record.versions.map((e) => e.reference));
    result.offered = offeredVersions(catalogs, name, {
      kind: options.kind,
      arch: identity.arch,
    }).map((o) => ({ ...o, installed: o.reference !== undefined && have.has(o.reference) }));
  } catch (e) {
    if (!isExtctlError(e)) throw e;
    result.catalogError = e.message;
    ctx.log.warn(`the catalogs could not be read: ${e.message}`);
  }
  return result;
}
