// Boot assessment for extensions (issue 28 item 5), systemd's Automatic Boot Assessment applied
// to extension versions: `upgrade --tries N` leaves the new version *pending* with N tries; each
// `extctl boot` spends one; `extctl bless` (after boot-complete.target) marks it good; a boot that
// finds it pending with no tries left links the previous version instead and records a fallback.
// The state lives in the extension's version record (root-owned, 0644, under the store).
import type { VersionEntry, VersionRecord } from "../store/versions.js";

export type { BootFallback, PendingVersion } from "../store/versions.js";

/** How many fallbacks a record keeps (the count goes on). */
const FALLBACKS_KEPT = 10;

/** After an upgrade switched `from` -> `to`: on trial for `tries` boots (0: not assessed). */
export function startTrial(
  record: VersionRecord,
  from: VersionEntry,
  to: VersionEntry,
  tries: number,
  now = new Date(),
): void {
  // Upgrading again while the version upgraded from is still on trial: a fallback goes to the
  // last version not on trial, never to one that was not yet proven.
  const base =
    record.pending && record.pending.file === from.file
      ? { version: record.pending.previous, file: record.pending.previousFile }
      : from;
  if (tries <= 0) {
    delete record.pending;
    return;
  }
  record.pending = {
    version: to.version,
    file: to.file,
    previous: base.version,
    previousFile: base.file,
    triesLeft: tries,
    tries,
    since: now.toISOString(),
  };
}

export type BootDecision =
  | { action: "none" }
  /** The pending version is no longer current (rolled back, upgraded by hand): trial dropped. */
  | { action: "stale" }
  /** One try spent; the pending version boots. */
  | { action: "try"; version: string; triesLeft: number }
  /** No tries left: the previous version is made current instead. */
  | { action: "fallback"; from: string; to: string; toFile: string; reason: string };

/**
 * What a boot does with a record, given the version current now; the record is updated for
 * every outcome but the switch itself, which the caller makes for "fallback".
 */
export function decideAtBoot(
  record: VersionRecord,
  current: VersionEntry | undefined,
  now = new Date(),
): BootDecision {
  const pending = record.pending;
  if (!pending) return { action: "none" };
  if (!current || current.file !== pending.file) {
    delete record.pending;
    return { action: "stale" };
  }
  if (pending.triesLeft > 0) {
    pending.triesLeft -= 1;
    return { action: "try", version: pending.version, triesLeft: pending.triesLeft };
  }
  const reason = `${pending.version} was not blessed in ${pending.tries} ${pending.tries === 1 ? "boot" : "boots"} (boot-complete.target was not reached)`;
  delete record.pending;
  record.bootFallbacks = [
    ...(record.bootFallbacks ?? []),
    { at: now.toISOString(), from: pending.version, to: pending.previous, reason },
  ].slice(-FALLBACKS_KEPT);
  record.bootFallbackCount = (record.bootFallbackCount ?? 0) + 1;
  // As after a rollback: upgrade leaves the version alone unless asked for by name.
  if (!record.rolledBack.includes(pending.version)) record.rolledBack.push(pending.version);
  record.previous = pending.version;
  return {
    action: "fallback",
    from: pending.version,
    to: pending.previous,
    toFile: pending.previousFile,
    reason,
  };
}

export type BlessDecision =
  | { action: "blessed"; version: string }
  | { action: "already"; version: string }
  | { action: "none" };

/** `extctl bless` after boot-complete.target: the current version is good. */
export function bless(record: VersionRecord, current: VersionEntry | undefined): BlessDecision {
  if (!current) return { action: "none" };
  const pending = record.pending;
  if (pending && pending.file === current.file) {
    delete record.pending;
    record.blessed = current.version;
    return { action: "blessed", version: current.version };
  }
  if (pending) delete record.pending; // a trial of a version that is not current is over
  if (record.blessed === current.version) return { action: "already", version: current.version };
  record.blessed = current.version;
  return { action: "blessed", version: current.version };
}

/** Reads the default number of tries from /etc/extctl/boot-tries' text (a whole number). */
export function parseTries(text: string, where: string): number {
  const value = text.trim();
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n > 100)
    throw new Error(`${where} holds ${JSON.stringify(value)}, not a whole number of tries 0-100`);
  return n;
}
