// `rollback NAME [--to VERSION] [--now]`: make an installed older version current again (the one
// switched from last, or the one named), for every profile at once; with --now confirm the
// merge, and go forward again when it does not merge. `upgrade` then leaves the version rolled
// back from alone until it is asked for by name.
import type { Context } from "../util/context.js";
import { ExtctlError } from "../util/errors.js";
import { ExtensionStore } from "../domain/store/store.js";
import type { ExtensionKind, Profile } from "../domain/store/layout.js";
import { shortName } from "../domain/store/names.js";
import { VersionedStore, storeFileName, type VersionEntry } from "../domain/store/versions.js";
import { switchVersion } from "../domain/lifecycle/steps.js";
import type { RefreshMode } from "../domain/activate/refresh.js";
import { refusalOf } from "./version-refusal.js";
import { requireRoot, withLock } from "./guard.js";

export interface RollbackOptions {
  kind: ExtensionKind;
  name: string;
  to?: string;
  now?: boolean;
  policy?: string;
  trust?: string[];
  refresh?: RefreshMode;
}

export interface RollbackResult {
  name: string;
  from: string;
  to: string;
  profiles: Profile[];
  merged?: boolean;
}

export async function rollback(ctx: Context, options: RollbackOptions): Promise<RollbackResult> {
  requireRoot(ctx);
  const store = new ExtensionStore(ctx.root, options.kind);
  const versions = new VersionedStore(store, (m) => ctx.log.warn(m));
  return withLock(ctx, async () => {
    const installed = await versions.names();
    const name = installed.includes(options.name) ? options.name : shortName(options.name);
    const record = await versions.read(name);
    if (!record)
      throw new ExtctlError(
        "not-found",
        `${name} was not installed by name, so it has no versions`,
        {
          hint: `\`extctl ${options.kind} list\` shows the store; \`install NAME\` installs from a catalog`,
        },
      );
    await versions.reconcile(record);
    const current = await versions.current(record);
    if (!current)
      throw new ExtctlError(
        "exists",
        `${storeFileName(name)} is none of the versions extctl installed, so there is nothing to roll back from`,
      );
    const target = pickTarget(record.versions, current, options.to, record.previous);
    const refusal = await refusalOf(ctx, versions, name, target, {
      ...(options.policy === undefined ? {} : { policy: options.policy }),
      ...(options.trust === undefined ? {} : { trust: options.trust }),
    });
    if (refusal)
      throw new ExtctlError(
        "incompatible",
        `${name} ${target.version} cannot be current: ${refusal}`,
        {
          hint: `${name} ${current.version} stays current`,
        },
      );
    record.previous = current.version;
    if (target.installedAt < current.installedAt && !record.rolledBack.includes(current.version))
      record.rolledBack.push(current.version);
    record.rolledBack = record.rolledBack.filter((v) => v !== target.version);
    await versions.write(record);
    const outcome = await switchVersion(ctx, versions, name, current, target, {
      ...(options.now ? { now: true } : {}),
      ...(options.refresh ? { refresh: options.refresh } : {}),
    });
    if (outcome.merged) {
      record.merged = target.version;
      await versions.write(record);
    }
    const profiles = await store.enabledIn(storeFileName(name));
    ctx.log.info(
      `${name} is at ${target.version} again (was ${current.version})` +
        (profiles.length ? ` in: ${profiles.join(", ")}` : "") +
        (outcome.merged
          ? "; merged"
          : options.now
            ? ""
            : "; it merges at the next refresh or boot"),
    );
    return {
      name,
      from: current.version,
      to: target.version,
      profiles,
      ...(outcome.merged === undefined ? {} : { merged: outcome.merged }),
    };
  });
}

function pickTarget(
  versions: readonly VersionEntry[],
  current: VersionEntry,
  to: string | undefined,
  previous: string | undefined,
): VersionEntry {
  const others = versions.filter((v) => v.file !== current.file);
  const list = () => versions.map((v) => v.version).join(", ");
  if (to !== undefined) {
    if (to === current.version)
      throw new ExtctlError("usage", `${current.version} is the current version already`, {
        exitCode: 2,
      });
    const found = others.filter((v) => v.version === to);
    if (found.length === 0)
      throw new ExtctlError("not-found", `version ${to} is not installed (installed: ${list()})`, {
        hint: "`install NAME@VERSION` fetches it",
      });
    return newest(found);
  }
  const prior = others.filter((v) => v.version === previous);
  if (prior.length > 0) return newest(prior);
  const older = others.filter((v) => v.installedAt < current.installedAt);
  if (older.length === 0)
    throw new ExtctlError(
      "not-found",
      `there is no older version to roll back to (installed: ${list()})`,
    );
  return newest(older);
}

function newest(list: readonly VersionEntry[]): VersionEntry {
  return [...list].sort((a, b) => b.installedAt.localeCompare(a.installedAt))[0] as VersionEntry;
}
