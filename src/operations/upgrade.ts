// `upgrade [NAME...|--all]`: re-resolve what each extension installed by name asked for (a pin
// stays), fetch the new version, judge it (policy, signature, the `check` rules) before anything
// switches, switch every profile at once and, with --now, confirm the merge. Whatever step finds
// the new version unusable, the old one stays current and merged and the item says why.
import semver from "semver";
import { tagVersion, type Resolution } from "../domain/catalog/resolve.js";
import type { Context } from "../util/context.js";
import { EX_TEMPFAIL, ExtctlError, isExtctlError, isTemporary } from "../util/errors.js";
import { ExtensionStore } from "../domain/store/store.js";
import type { ExtensionKind } from "../domain/store/layout.js";
import { shortName } from "../domain/store/names.js";
import {
  VersionedStore,
  storeFileName,
  type VersionEntry,
  type VersionRecord,
} from "../domain/store/versions.js";
import {
  CatalogCache,
  discardVersion,
  fetchVersion,
  nodeIdentity,
  restoreVersion,
  switchVersion,
  type NetOptions,
} from "../domain/lifecycle/steps.js";
import type { RefreshMode } from "../domain/activate/refresh.js";
import { DEFAULT_KEEP } from "./install-name.js";
import { refusalOf } from "./version-refusal.js";
import { parseTries, startTrial } from "../domain/lifecycle/boot-assessment.js";
import { READ_CAPS } from "../util/bounded-read.js";
import { readOwnedInRoot } from "../util/owned-state.js";

/** Where the node's default `--tries` is kept (one whole number). */
export const BOOT_TRIES_FILE = "/etc/extctl/boot-tries";
import {
  formatHealthCheck,
  runHealthCheck,
  type HealthCheckResult,
} from "../domain/lifecycle/health-check.js";
import { requireRoot, withLock } from "./guard.js";

export interface UpgradeOptions extends NetOptions {
  kind: ExtensionKind;
  /** Extensions to upgrade; empty with `all`: every one installed by name. */
  names: string[];
  all?: boolean;
  now?: boolean;
  dryRun?: boolean;
  keep?: number;
  allowDowngrade?: boolean;
  /** Image policy instead of the node's, for the new versions. */
  policy?: string;
  /** Pre-fetch for another OS: the os-release to judge against; nothing switches. */
  forOs?: Record<string, string>;
  refresh?: RefreshMode;
  /**
   * The health check to run after the new version merged (with `now`), remembered in each
   * extension's record for later upgrades; an empty list forgets the remembered one.
   */
  healthCheck?: string[];
  /** How long the check may run (default 60 s). */
  healthCheckTimeoutMs?: number;
  /**
   * Boots the new version may try before it is blessed (boot assessment); default
   * /etc/extctl/boot-tries, else 0: not assessed.
   */
  tries?: number;
}

export type UpgradeAction =
  "up-to-date" | "would-upgrade" | "upgraded" | "prefetched" | "skipped" | "failed";

export interface UpgradeItem {
  name: string;
  from?: string;
  to?: string;
  action: UpgradeAction;
  reason: string;
  reference?: string;
  /** Set with --now when a refresh ran: whether the new version merged. */
  merged?: boolean;
  pruned?: string[];
  /** A failure because a catalog, registry or server could not be reached: try later. */
  unreachable?: boolean;
  /** The health check that ran after the merge, and how it ended. */
  healthCheck?: HealthCheckResult;
}

export interface UpgradeResult {
  kind: ExtensionKind;
  items: UpgradeItem[];
  /**
   * 0 something was upgraded (or would be), 3 nothing to do, 1 a failure kept an old version,
   * 75 (EX_TEMPFAIL) a catalog or registry could not be reached and nothing else failed.
   */
  exitCode: 0 | 1 | 3 | typeof EX_TEMPFAIL;
}

/** Exit code when every extension is up to date: a timer or a script can tell "nothing new". */
export const NOTHING_TO_DO = 3;

export async function upgrade(ctx: Context, options: UpgradeOptions): Promise<UpgradeResult> {
  if (options.all && options.names.length > 0)
    throw new ExtctlError("usage", "give extension names or --all, not both", { exitCode: 2 });
  if (!options.all && options.names.length === 0)
    throw new ExtctlError("usage", "name the extensions to upgrade, or pass --all", {
      exitCode: 2,
    });
  if (!options.dryRun) requireRoot(ctx);
  if (options.healthCheck && options.healthCheck.length > 0 && !options.now && !options.dryRun)
    throw new ExtctlError(
      "usage",
      "--health-check runs after the new version merged; give --now as well",
      { exitCode: 2 },
    );
  const store = new ExtensionStore(ctx.root, options.kind);
  const versions = new VersionedStore(store, (m) => ctx.log.warn(m));
  const run = async (): Promise<UpgradeResult> => {
    const installed = await versions.names();
    const names = options.all ? installed : options.names.map((n) => wantedName(n, installed));
    if (options.healthCheck && !options.dryRun)
      for (const name of names) await rememberHealthCheck(versions, name, options.healthCheck);
    const catalogs = new CatalogCache(ctx, options, !options.dryRun && !options.forOs);
    const identity = nodeIdentity(ctx);
    identity.catch(() => {}); // awaited by each judge; nothing to judge must not leave it unhandled
    // Judging what each extension should be is read-only (record, inodes, catalog), so it runs for
    // all of them at once; fetching and switching then go one extension at a time.
    const judged = await Promise.all(
      names.map((name) =>
        settle(name, versions, () => judge(ctx, versions, name, catalogs, identity, options)),
      ),
    );
    const items: UpgradeItem[] = [];
    for (const j of judged) {
      if (!("record" in j)) {
        items.push(j);
        continue;
      }
      items.push(
        await settle(
          j.record.name,
          versions,
          () => upgradeTo(ctx, versions, j, options),
          j.record,
          j.resolution.version,
        ),
      );
    }
    // The result is what the caller prints (a table, JSON, or a line per event under a unit):
    // logged only for -v, so that no item is reported twice.
    for (const item of items)
      ctx.log.debug(
        `${options.kind} ${item.name}: ${item.action}${item.to ? ` ${item.from ?? "?"} -> ${item.to}` : ""}: ${item.reason}`,
      );
    const failed = items.filter((i) => i.action === "failed");
    const exitCode = failed.some((i) => !i.unreachable)
      ? 1
      : failed.length > 0
        ? EX_TEMPFAIL
        : items.some((i) => ["upgraded", "would-upgrade", "prefetched"].includes(i.action))
          ? 0
          : NOTHING_TO_DO;
    // What `metrics` reports as the last upgrade; a dry run or a pre-fetch upgraded nothing.
    if (!options.dryRun && !options.forOs) {
      const { recordUpgrade, writeConfiguredMetrics } = await import("./metrics.js");
      await recordUpgrade(ctx, options.kind, exitCode);
      await writeConfiguredMetrics(ctx);
    }
    return { kind: options.kind, items, exitCode };
  };
  return options.dryRun ? run() : withLock(ctx, run);
}

/** The node's default tries for boot assessment: /etc/extctl/boot-tries, else 0 (none). */
export async function defaultTries(ctx: Context): Promise<number> {
  const raw = await readOwnedInRoot(ctx.root, BOOT_TRIES_FILE, {
    cap: READ_CAPS.config,
    what: "the default boot tries",
    warn: (m) => ctx.log.warn(m),
  });
  if (raw === undefined) return 0;
  try {
    return parseTries(raw.toString("utf8"), BOOT_TRIES_FILE);
  } catch (e) {
    throw new ExtctlError("config", (e as Error).message, {
      hint: "write a whole number (2 gives a new version two boots to reach boot-complete.target), or remove the file",
    });
  }
}

/** Keeps (or, given an empty list, forgets) the health check in an extension's record. */
export async function rememberHealthCheck(
  versions: VersionedStore,
  name: string,
  check: readonly string[],
): Promise<void> {
  const record = await versions.read(name).catch(() => undefined);
  if (!record) return; // judged (and reported) as not installed by name
  if (JSON.stringify(record.healthCheck ?? []) === JSON.stringify(check)) return;
  if (check.length === 0) delete record.healthCheck;
  else record.healthCheck = [...check];
  await versions.write(record);
}

/** A name as installed (the catalog name), also when given as its store file name. */
function wantedName(query: string, installed: readonly string[]): string {
  if (installed.includes(query)) return query;
  const short = shortName(query);
  return installed.includes(short) ? short : query;
}

/**
 * Runs one step for one extension; a refusal extctl can explain becomes a failed item naming the
 * version that stays current and, once one was chosen, the version it tried (`tried`).
 * Anything else is a bug and propagates.
 */
async function settle<T>(
  name: string,
  versions: VersionedStore,
  step: () => Promise<T | UpgradeItem>,
  record?: VersionRecord,
  tried?: string,
): Promise<T | UpgradeItem> {
  try {
    return await step();
  } catch (e) {
    if (!isExtctlError(e)) throw e;
    const known = record ?? (await versions.read(name).catch(() => undefined));
    const current = known ? await versions.current(known).catch(() => undefined) : undefined;
    return {
      name,
      ...(current ? { from: current.version } : {}),
      ...(tried === undefined ? {} : { to: tried }),
      action: "failed",
      reason: e.message,
      ...(isTemporary(e) ? { unreachable: true } : {}),
    };
  }
}

/** An extension whose catalog offers another version than the current one, to be fetched. */
interface Offer {
  record: VersionRecord;
  current: VersionEntry;
  resolution: Resolution;
}

/** What the catalog says `name` should be: a final item (nothing to fetch), or an offer. */
async function judge(
  ctx: Context,
  versions: VersionedStore,
  name: string,
  catalogs: CatalogCache,
  identity: Promise<{ arch: string; machineId?: string }>,
  options: UpgradeOptions,
): Promise<Offer | UpgradeItem> {
  const record = await versions.read(name);
  if (!record)
    return {
      name,
      action: "failed",
      reason: `${name} was not installed by name from a catalog, so it has no versions to upgrade`,
    };
  await versions.reconcile(record);
  const current = await versions.current(record);
  if (!current)
    return {
      name,
      action: "failed",
      reason: `${storeFileName(name)} is none of the versions extctl installed (replaced by hand or from a URI); \`install ${name}\` takes it back`,
    };
  const [{ catalogs: loaded }, { resolveExtension }, node] = await Promise.all([
    catalogs.get(record.catalogs),
    import("../domain/catalog/resolve.js"),
    identity,
  ]);
  const resolution = resolveExtension(loaded, name, record.requested, {
    kind: options.kind,
    ...node,
    log: (m) => ctx.log.info(m),
  });
  const item = { name, from: current.version, to: resolution.version };
  if (resolution.reference === current.reference)
    return {
      name,
      from: current.version,
      action: "up-to-date",
      reason: record.pinned
        ? `pinned to ${record.requested ?? current.version}`
        : `${current.version} is the version ${record.requested === undefined ? "the catalog calls latest" : `that satisfies ${record.requested}`}`,
    };
  if (!record.pinned && record.rolledBack.includes(resolution.version))
    return {
      ...item,
      action: "skipped",
      reason: `${resolution.version} was rolled back from; \`install ${name}@${resolution.version}\` takes it again`,
    };
  if (isDowngrade(current.version, resolution.version) && !options.allowDowngrade)
    return {
      ...item,
      action: "failed",
      reason: `the catalog ${resolution.catalog} chose ${resolution.version}, older than the current ${current.version}; --allow-downgrade takes it`,
    };
  if (options.dryRun)
    return {
      ...item,
      action: "would-upgrade",
      reference: resolution.reference,
      reason: `${resolution.catalog} offers ${resolution.version}`,
    };
  return { record, current, resolution };
}

/** Fetches the offered version, judges it on this node, switches to it and prunes. */
async function upgradeTo(
  ctx: Context,
  versions: VersionedStore,
  offer: Offer,
  options: UpgradeOptions,
): Promise<UpgradeItem> {
  const { record, current, resolution } = offer;
  const name = record.name;
  const item = { name, from: current.version, to: resolution.version };
  const { entry, downloaded } = await fetchVersion(ctx, versions, record, resolution, options);
  const refusal = await refusalOf(ctx, versions, name, entry, {
    ...(options.policy === undefined ? {} : { policy: options.policy }),
    ...(options.trust === undefined ? {} : { trust: options.trust }),
    ...(options.forOs ? { osRelease: options.forOs } : {}),
    fresh: downloaded,
  });
  if (refusal) {
    if (!record.versions.includes(entry)) await discardVersion(versions, name, entry);
    return {
      ...item,
      action: "failed",
      reference: entry.reference,
      reason: `${resolution.version}: ${refusal}`,
    };
  }
  if (!record.versions.includes(entry)) record.versions.push(entry);
  if (options.forOs) {
    await versions.write(record);
    return {
      ...item,
      action: "prefetched",
      reference: entry.reference,
      reason: `${downloaded ? "fetched" : "already had"} ${resolution.version} for that OS; nothing switched`,
    };
  }
  // The record names the new version before the switch, so a crash at any point leaves a record
  // that knows both files.
  record.previous = current.version;
  await versions.write(record);
  const outcome = await switchVersion(ctx, versions, name, current, entry, {
    ...(options.now ? { now: true } : {}),
    ...(options.refresh ? { refresh: options.refresh } : {}),
  });
  if (outcome.merged) record.merged = entry.version;
  await versions.write(record);
  const check = options.now && outcome.merged ? record.healthCheck : undefined;
  let health: HealthCheckResult | undefined;
  if (check && check.length > 0) {
    health = await runHealthCheck(
      ctx,
      check,
      { kind: options.kind, name, version: entry.version, previous: current.version },
      options.healthCheckTimeoutMs,
    );
    if (!health.passed) {
      // The new version merged but the node is not well with it: the old one comes back, and
      // later upgrades leave this version alone, as after a rollback.
      const back = await restoreVersion(ctx, versions, name, current, options.refresh);
      record.previous = entry.version;
      if (back.includes("merged again")) record.merged = current.version;
      if (!record.rolledBack.includes(entry.version)) record.rolledBack.push(entry.version);
      await versions.write(record);
      return {
        ...item,
        action: "failed",
        reference: entry.reference,
        reason: `${entry.version} merged but the health check ${formatHealthCheck(check)} failed (${health.summary}); ${back}`,
        healthCheck: health,
      };
    }
    ctx.log.info(`${name} ${entry.version}: health check ${formatHealthCheck(check)} passed`);
  }
  const tries = options.tries ?? (await defaultTries(ctx));
  if (tries > 0 || record.pending) {
    startTrial(record, current, entry, tries);
    await versions.write(record);
  }
  const pruned = await versions.prune(record, options.keep ?? DEFAULT_KEEP);
  return {
    ...item,
    action: "upgraded",
    reference: entry.reference,
    reason: outcome.refreshed
      ? `${entry.version} is merged${health ? " and its health check passed" : ""}`
      : options.now
        ? `${entry.version} is current; it was not merged now (not linked for the booted profile)`
        : `${entry.version} is current; it merges at the next refresh or boot (--now merges it now)`,
    ...(outcome.merged === undefined ? {} : { merged: outcome.merged }),
    ...(pruned.length > 0 ? { pruned } : {}),
    ...(health ? { healthCheck: health } : {}),
  };
}

function isDowngrade(from: string, to: string): boolean {
  // Only versions both of which are semver can be ordered; a tag like `stable` never is.
  const a = tagVersion(from);
  const b = tagVersion(to);
  return a !== undefined && b !== undefined && semver.rcompare(b, a) > 0;
}
