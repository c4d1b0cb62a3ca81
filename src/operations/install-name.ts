// `install NAME[@VERSION|@CONSTRAINT]`: resolve a name through the catalogs (spec/kairos.md
// section 6), fetch the digest-pinned image into the extension's versions and make it current.
// Profile links point at NAME.raw, so an extension enabled before keeps its enablement.
import type { Context } from "../util/context.js";
import { ExtensionStore } from "../domain/store/store.js";
import type { ExtensionKind, Profile } from "../domain/store/layout.js";
import { checkSafeName } from "../domain/store/names.js";
import { VersionedStore, storeFileName } from "../domain/store/versions.js";
import { ExtctlError } from "../util/errors.js";
import {
  CatalogCache,
  discardVersion,
  fetchVersion,
  newRecord,
  nodeIdentity,
  parseRequest,
  type NetOptions,
} from "../domain/lifecycle/steps.js";
import { requireRoot, withLock } from "./guard.js";
import { refusalOf } from "./version-refusal.js";

export interface InstallNameOptions extends NetOptions {
  kind: ExtensionKind;
  /** NAME, NAME@VERSION or NAME@CONSTRAINT. */
  spec: string;
  version?: string;
  dryRun?: boolean;
  keep?: number;
}

export interface InstallNameResult {
  kind: ExtensionKind;
  name: string;
  version: string;
  reference: string;
  catalog: string;
  shadowed: string[];
  requested?: string;
  pinned: boolean;
  /** The store file the profiles link to. */
  image: string;
  /** What it was before, when it was installed by name already. */
  from?: string;
  action: "would-install" | "installed" | "already-installed";
  downloaded: boolean;
  profiles: Profile[];
  pruned: string[];
}

export const DEFAULT_KEEP = 3;

export async function installByName(
  ctx: Context,
  options: InstallNameOptions,
): Promise<InstallNameResult> {
  const { name, requested } = parseRequest(options.spec, options.version);
  checkSafeName(storeFileName(name), `the extension name ${JSON.stringify(name)}`, {
    exitCode: 2,
  });
  if (!options.dryRun) requireRoot(ctx);
  const store = new ExtensionStore(ctx.root, options.kind);
  const versions = new VersionedStore(store, (m) => ctx.log.warn(m));
  const catalogs = new CatalogCache(ctx, options, !options.dryRun);
  const [{ catalogs: loaded }, identity, { resolveExtension }] = await Promise.all([
    catalogs.get([]),
    nodeIdentity(ctx),
    import("../domain/catalog/resolve.js"),
  ]);
  const resolution = resolveExtension(loaded, name, requested, {
    kind: options.kind,
    ...identity,
    log: (m) => ctx.log.info(m),
  });
  const base = {
    kind: options.kind,
    name,
    version: resolution.version,
    reference: resolution.reference,
    catalog: resolution.catalog,
    shadowed: resolution.shadowed,
    ...(requested === undefined ? {} : { requested }),
    pinned: resolution.pinned,
    image: storeFileName(name),
  };
  if (options.dryRun)
    return { ...base, action: "would-install", downloaded: false, profiles: [], pruned: [] };

  return withLock(ctx, async () => {
    await store.ensureStore();
    const record =
      (await versions.read(name)) ??
      newRecord(name, requested, resolution.pinned, options.catalogs ?? []);
    await versions.reconcile(record);
    let current = await versions.current(record);
    if (!current && (await store.images()).includes(storeFileName(name))) {
      // An image installed from a URI under this name: kept as a version a rollback can reach.
      current = await versions.adopt(name, "unversioned", `store:${storeFileName(name)}`);
      record.versions.push(current);
      ctx.log.info(`kept the ${storeFileName(name)} that was installed as version "unversioned"`);
    }
    const { entry, downloaded } = await fetchVersion(ctx, versions, record, resolution, options);
    if (current?.file !== entry.file && !downloaded) {
      // A kept version becomes current only as rollback and upgrade take one: its bytes still
      // the ones fetched, and admitted under the policy in force now.
      const refusal = await refusalOf(ctx, versions, name, entry, {
        ...(options.trust === undefined ? {} : { trust: options.trust }),
      });
      if (refusal) {
        await versions.write(record); // an image adopted above stays reachable
        throw new ExtctlError(
          "incompatible",
          `${name} ${entry.version} cannot be current: ${refusal}`,
          {
            hint: current
              ? `${name} ${current.version} stays current`
              : `${storeFileName(name)} was left as it was`,
          },
        );
      }
    }
    if (current?.file !== entry.file && downloaded) {
      // Judged before it becomes current, as upgrade does: a version whose release file does
      // not fit this node (ID=fedora on Debian) would sit in every profile and never merge.
      // Only systemd's rules: the trust policy is enable's and boot's to apply, as for install.
      const { checkImage } = await import("./check.js");
      const check = await checkImage(ctx, {
        image: await store.root.readPath(versions.filePath(name, entry)),
        kind: options.kind,
        fileName: storeFileName(name),
      });
      const failed = check.rules.find((r) => r.status === "fail" && r.rule !== "image-policy");
      const refusal = failed ? `it would not merge on this node: ${failed.reason}` : undefined;
      if (refusal) {
        if (!record.versions.includes(entry)) await discardVersion(versions, name, entry);
        throw new ExtctlError(
          "incompatible",
          `${name} ${entry.version} (${entry.reference}) is not installed: ${refusal}`,
          {
            hint:
              current === undefined
                ? "ask for a version built for this node (NAME@VERSION), or `extctl check` the image to see what it needs"
                : `${current.version} stays current; ask for a version built for this node (NAME@VERSION)`,
          },
        );
      }
    }
    if (!record.versions.includes(entry)) record.versions.push(entry);
    record.pinned = resolution.pinned;
    record.catalogs = options.catalogs ?? record.catalogs;
    if (requested === undefined) delete record.requested;
    else record.requested = requested;
    // Asked for by name: a version rolled back from before is wanted again.
    record.rolledBack = record.rolledBack.filter((v) => v !== entry.version);
    const already = current?.file === entry.file;
    if (current && !already) record.previous = current.version;
    await versions.write(record);
    if (!already) await versions.switchTo(name, entry);
    const pruned = await versions.prune(record, options.keep ?? DEFAULT_KEEP);
    const profiles = await store.enabledIn(storeFileName(name));
    ctx.log.info(
      already
        ? `${name} ${entry.version} is installed already`
        : `installed ${name} ${entry.version} as ${store.imagePath(storeFileName(name))}` +
            (current ? ` (was ${current.version})` : "") +
            (profiles.length > 0 ? `; enabled in: ${profiles.join(", ")}` : ""),
    );
    return {
      ...base,
      ...(current ? { from: current.version } : {}),
      action: already ? "already-installed" : "installed",
      downloaded,
      profiles,
      pruned,
    };
  });
}

/** Whether what the user typed is a URI or a path (install it as before), not a catalog name. */
export function isUriOrPath(spec: string): boolean {
  return spec.startsWith("/") || /^[a-z][a-z0-9+.-]*:/i.test(spec);
}
