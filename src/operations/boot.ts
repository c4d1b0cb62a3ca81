// `boot`: immucore's step `enable-sysext-confext` (spec/kairos.md section 3): detect the boot
// state, write the sentinels, link the profile's images then common's into /run, each one
// checked against the trust policy first, and refresh. One bad image never stops the others.
import { stat } from "node:fs/promises";
import type { Context } from "../util/context.js";
import { ExtctlError, messageOf } from "../util/errors.js";
import { ExtensionStore } from "../domain/store/store.js";
import { EXTENSION_KINDS, type ExtensionKind, type Profile } from "../domain/store/layout.js";
import { profileForState, type BootState } from "../domain/activate/boot-state.js";
import {
  detectBootState,
  writeSentinels,
  type BootSources,
} from "../domain/activate/boot-detect.js";
import type { RefreshMode } from "../domain/activate/refresh.js";
import type { MergedHierarchy } from "../domain/activate/merged.js";
import type { UnmergedImage } from "../domain/activate/activation.js";
import { requireRoot, withLock } from "./guard.js";

export interface BootOptions extends BootSources {
  /** "none" is --no-refresh: for the initramfs, before systemd-sysext starts. */
  refresh?: RefreshMode;
  /** Trust policy override (--policy); default: the node's policy. */
  policy?: string;
  /** Replaces the trust check (tests, benchmarks); default: the trust module's. */
  trust?: BootTrust;
  /** Replaces `check`'s verdict (unit tests on stub images); default: mergeRefusal. */
  mergeCheck?: MergeCheck;
  kinds?: readonly ExtensionKind[];
}

/**
 * Whether the root's systemd merges an image stored as `name`: `refusal` says why not, and
 * `linkName` is the name extctl links it under (252-254: image/link-name.ts; default `name`).
 */
export type MergeCheck = (
  ctx: Context,
  hostPath: string,
  name: string,
  kind: ExtensionKind,
  systemd: number | undefined,
) => Promise<{ refusal?: string; linkName?: string }>;

/** The outcome of checking one image against the policy. */
export interface ImageVerdict {
  ok: boolean;
  /** Short machine word: "ok", "unsigned", "untrusted-signer", ... */
  outcome: string;
  reason?: string;
}

/** The policy boot applies and how it checks one image (host path) against it. */
export interface BootTrust {
  policy: string;
  /** Where the policy came from ("--policy", "/etc/extctl/policy", "trusted boot", ...). */
  source: string;
  /** EFI certificates imported into /run/verity.d (trusted boot). */
  importedKeys?: string[];
  check(hostPath: string, name: string, kind: ExtensionKind): Promise<ImageVerdict>;
}

export interface BootImage {
  kind: ExtensionKind;
  name: string;
  /** The profile dir the link goes through. */
  profile: Profile;
  /** The /run link's name when it is not the image's (systemd 252-254, image/link-name.ts). */
  link?: string;
  /** linked: made now; unchanged: it was already there. */
  action?: "linked" | "unchanged";
  outcome?: string;
  /** Why it was skipped. */
  reason?: string;
}

export interface BootKindRefresh {
  kind: ExtensionKind;
  refreshed: boolean;
  merged: MergedHierarchy[];
  /** Images linked in /run that systemd did not merge, with its reason (as enable --now says). */
  unmerged: UnmergedImage[];
  error?: string;
}

export interface BootResult {
  state: BootState;
  uki: boolean;
  detectedBy: string;
  /** Sentinels written by this run (empty when they were already there). */
  sentinels: string[];
  profile?: Profile;
  policy?: { policy: string; source: string; importedKeys: string[] };
  linked: BootImage[];
  skipped: BootImage[];
  /** Stale /run links (from another profile) removed so /run matches the boot state. */
  unlinked: { kind: ExtensionKind; name: string }[];
  refresh: BootKindRefresh[];
  /** Boot assessment: pending versions whose try this boot spent, or that fell back. */
  assessment: BootAssessment[];
}

export interface BootAssessment {
  kind: ExtensionKind;
  name: string;
  action: "try" | "fallback" | "stale";
  version?: string;
  triesLeft?: number;
  from?: string;
  to?: string;
  reason?: string;
}

export async function boot(ctx: Context, options: BootOptions = {}): Promise<BootResult> {
  requireRoot(ctx);
  return withLock(ctx, async () => {
    const result = await bootLocked(ctx, options);
    const { writeConfiguredMetrics } = await import("./metrics.js");
    await writeConfiguredMetrics(ctx);
    return result;
  });
}

/** The boot step without taking the lock, for callers that already hold it. */
export async function bootLocked(ctx: Context, options: BootOptions = {}): Promise<BootResult> {
  const detection = await detectBootState(ctx.root, { ...options, env: ctx.env });
  const sentinels = await writeSentinels(ctx.root, detection);
  const profile = profileForState(detection.state);
  const result: BootResult = {
    state: detection.state,
    uki: detection.uki,
    detectedBy: detection.reason,
    sentinels,
    ...(profile ? { profile } : {}),
    linked: [],
    skipped: [],
    unlinked: [],
    refresh: [],
    assessment: [],
  };
  ctx.log.info(`boot state: ${detection.state} (${detection.reason})`);
  const kinds = options.kinds ?? EXTENSION_KINDS;
  const stores = kinds.map((kind) => new ExtensionStore(ctx.root, kind));
  for (const store of stores) await store.ensureDir(store.layout.runtime);
  if (!profile) {
    ctx.log.info(`nothing to link: a ${detection.state} boot loads no extensions`);
    return result;
  }

  // Before anything is linked: a version out of tries is replaced by its predecessor first.
  for (const store of stores) await assessKind(ctx, store, result);

  const trust =
    options.trust ??
    (await nodeTrust(ctx, {
      ...(options.policy === undefined ? {} : { policy: options.policy }),
      uki: detection.uki,
      ...(options.efivarsDir ? { efivarsDir: options.efivarsDir } : {}),
      ...(options.cmdlineFile ? { cmdlineFile: options.cmdlineFile } : {}),
    }));
  result.policy = {
    policy: trust.policy,
    source: trust.source,
    importedKeys: trust.importedKeys ?? [],
  };
  const systemd = await bootSystemdVersion(ctx);
  const merges = options.mergeCheck ?? mergeRefusal;
  for (const store of stores)
    await linkKind(ctx, store, profile, { trust, merges }, systemd, result);

  const mode = options.refresh ?? "auto";
  if (mode !== "none") {
    for (const store of stores) result.refresh.push(await refreshKind(ctx, store, mode));
  }
  return result;
}

/** Spends one try of each pending version of a kind, or falls back to its predecessor. */
async function assessKind(ctx: Context, store: ExtensionStore, result: BootResult): Promise<void> {
  const [{ VersionedStore }, { decideAtBoot }] = await Promise.all([
    import("../domain/store/versions.js"),
    import("../domain/lifecycle/boot-assessment.js"),
  ]);
  const versions = new VersionedStore(store, (m) => ctx.log.warn(m));
  for (const name of await versions.names()) {
    try {
      const record = await versions.read(name);
      if (!record?.pending) continue;
      const decision = decideAtBoot(record, await versions.current(record));
      const kind = store.kind;
      if (decision.action === "fallback") {
        const back = record.versions.find((e) => e.file === decision.toFile);
        if (!back || !(await versions.has(name, back))) {
          // Nothing to go back to: the record keeps the fallback, the pending version stays.
          ctx.log.warn(
            `${kind} ${name}: ${decision.reason}, but ${decision.to} is no longer kept; ${decision.from} stays current`,
          );
        } else {
          await versions.switchTo(name, back);
          ctx.log.warn(
            `${kind} ${name}: boot fallback: ${decision.reason}; linking ${decision.to} instead`,
          );
        }
        result.assessment.push({
          kind,
          name,
          action: "fallback",
          from: decision.from,
          to: decision.to,
          reason: decision.reason,
        });
      } else if (decision.action === "try") {
        ctx.log.info(
          `${kind} ${name}: ${decision.version} is pending; this boot is one of its tries (${decision.triesLeft} left), \`extctl bless\` after boot-complete.target keeps it`,
        );
        result.assessment.push({
          kind,
          name,
          action: "try",
          version: decision.version,
          triesLeft: decision.triesLeft,
        });
      } else if (decision.action === "stale") {
        result.assessment.push({ kind, name, action: "stale" });
      }
      await versions.write(record);
    } catch (e) {
      // One extension's record never stops the boot of the others.
      ctx.log.warn(`${store.kind} ${name}: boot assessment skipped: ${messageOf(e)}`);
    }
  }
}

async function linkKind(
  ctx: Context,
  store: ExtensionStore,
  profile: Profile,
  checks: { trust: BootTrust; merges: MergeCheck },
  systemd: number | undefined,
  result: BootResult,
): Promise<void> {
  const { trust } = checks;
  const kind = store.kind;
  // A store that is not a directory (a file left where it should be) lists as empty, and the
  // boot would link nothing of this kind without a word: say why in the journal.
  const storeStat = await stat(await ctx.root.readPath(store.layout.store)).catch(() => undefined);
  if (storeStat && !storeStat.isDirectory())
    ctx.log.warn(
      `${store.layout.store} is not a directory, so no ${kind} images are linked (move it away and install the images again)`,
    );
  const wanted = new Map<string, Profile>();
  const dirs: Profile[] = profile === "common" ? ["common"] : [profile, "common"];
  const candidates: { dir: Profile; name: string }[] = [];
  for (const dir of dirs)
    for (const name of await store.profileLinks(dir)) candidates.push({ dir, name });
  // The checks read and verify each image; they run a few at a time so that one image's reads
  // overlap another's signature check. Linking then goes in order, so the profile wins clashes.
  const verdicts = limitedMap(candidates, CHECK_CONCURRENCY, (c) =>
    checkCandidate(ctx, store, checks, systemd, c.dir, c.name),
  );
  for (const [i, { dir, name }] of candidates.entries()) {
    const skip = (reason: string, outcome?: string) => {
      result.skipped.push({ kind, name, profile: dir, reason, ...(outcome ? { outcome } : {}) });
      ctx.log.warn(`skipping ${kind} ${name} (${dir}): ${reason}`);
    };
    const verdict = await (verdicts[i] as Promise<LinkedVerdict>);
    // The name systemd finds the release file under; profile and common clash on that name.
    const linkName = verdict.linkName ?? name;
    const owner = wanted.get(linkName);
    if (owner) {
      skip(`the ${owner} profile already links an image of that name, and it wins`, "clash");
      continue;
    }
    if (!verdict.ok) {
      skip(
        verdict.outcome === "missing" ||
          verdict.outcome === "unreadable" ||
          verdict.outcome === "refused"
          ? (verdict.reason ?? verdict.outcome)
          : `it fails the ${trust.policy} policy: ${verdict.reason ?? verdict.outcome}`,
        verdict.outcome,
      );
      continue;
    }
    wanted.set(linkName, dir);
    const made = await store.linkRuntime(dir, name, linkName);
    result.linked.push({
      kind,
      name,
      profile: dir,
      ...(linkName === name ? {} : { link: linkName }),
      action: made ? "linked" : "unchanged",
      outcome: verdict.outcome,
    });
    if (made)
      ctx.log.info(
        `linked ${kind} ${name} from the ${dir} profile${linkName === name ? "" : ` as ${linkName}, the name systemd ${systemd} finds its release file under`}`,
      );
  }
  // Links we (or immucore) made through a profile dir that this boot does not load, or that
  // now fail the policy, go: /run must say exactly what this boot state loads. Links pointing
  // elsewhere belong to someone else and stay.
  for (const name of await store.runtimeLinks()) {
    if (wanted.has(name)) continue;
    const info = await store.linkInfo(store.runtimeLinkPath(name));
    if (info && info.target.startsWith(`${store.layout.store}/`)) {
      await store.unlinkPath(store.runtimeLinkPath(name));
      result.unlinked.push({ kind, name });
      ctx.log.info(`unlinked ${kind} ${name}: this boot does not load it`);
    }
  }
}

const CHECK_CONCURRENCY = 4;

type LinkedVerdict = ImageVerdict & { linkName?: string };

/** Resolves the profile link to its image and checks it; never throws. */
async function checkCandidate(
  ctx: Context,
  store: ExtensionStore,
  { trust, merges }: { trust: BootTrust; merges: MergeCheck },
  systemd: number | undefined,
  dir: Profile,
  name: string,
): Promise<LinkedVerdict> {
  try {
    const info = await store.linkInfo(store.profileLinkPath(dir, name));
    if (!info?.resolves)
      return {
        ok: false,
        outcome: "missing",
        reason: `its link in the ${dir} profile leads to no image`,
      };
    const hostPath = ctx.root.path(await ctx.root.resolve(store.profileLinkPath(dir, name)));
    const unreadable = await unreadableBy(hostPath, systemd);
    if (unreadable) return { ok: false, outcome: "unreadable", reason: unreadable };
    const trusted = await trust.check(hostPath, name, store.kind);
    if (!trusted.ok) return trusted;
    // Only what `check` calls MERGES for the root's systemd is linked (issue 24, item 7); check
    // judges the image under the name extctl links it as (252-254: NAME.raw, link-name.ts).
    // The same dissection gives the link name, so the image is not opened once more for it.
    const { refusal, linkName } = await merges(ctx, hostPath, name, store.kind, systemd);
    if (refusal) return { ok: false, outcome: "refused", reason: refusal };
    return systemd === undefined || linkName === undefined || linkName === name
      ? trusted
      : { ...trusted, linkName };
  } catch (e) {
    // A reader or trust failure on one image is that image's problem only.
    return { ok: false, outcome: "error", reason: messageOf(e) };
  }
}

/**
 * Why the root's systemd would not merge the image under the name it is linked as, or undefined
 * when `check` calls it MERGES: boot links only those, since one image systemd refuses can abort
 * the whole merge (252 does on a release file that does not match the name).
 */
export const mergeRefusal: MergeCheck = async (ctx, hostPath, name, kind, systemd) => {
  const { checkImage } = await import("./check.js");
  const verdict = await checkImage(ctx, {
    image: hostPath,
    fileName: name,
    kind,
    skipPolicy: true,
    // Linked in the initrd or not, the images merge in the booted system.
    scope: "system",
    ...(systemd === undefined ? {} : { systemd }),
  });
  return verdict.compatible
    ? { linkName: verdict.linkName }
    : {
        refusal: `check says REFUSED for systemd ${verdict.systemdVersion}: ${verdict.reason ?? "a rule failed"}`,
      };
};

/**
 * The root's systemd (or, for a --root without one, the host's, which merges it). An image
 * that systemd cannot read makes its whole refresh fail, so it is skipped under every policy.
 */
async function bootSystemdVersion(ctx: Context): Promise<number | undefined> {
  const { mergingSystemd } = await import("../domain/image/host.js");
  return (await mergingSystemd(ctx.root))?.version;
}

/**
 * Why systemd (`version`, when known) could not read the image at all, or undefined when it can.
 * Something that is not an image, or one cut short (its superblock claims more than the file
 * holds), no systemd can read, and one unreadable image makes its whole merge fail (systemd
 * issue 32762): it is skipped under every policy, `any` included.
 */
async function unreadableBy(
  hostPath: string,
  version: number | undefined,
): Promise<string | undefined> {
  const [{ ReadAheadFileSource }, { dissectImage, unreadableBySystemd }, { checkSuperblock }] =
    await Promise.all([
      import("../domain/image/read-ahead.js"),
      import("../domain/image/ddi.js"),
      import("../domain/image/filesystem.js"),
    ]);
  const file = ReadAheadFileSource.open(hostPath);
  try {
    const image = await dissectImage(file, version === undefined ? {} : { systemd: version });
    // The superblock the kernel mounts from, with its size claim: a truncated download is
    // caught here, before it takes every other image's merge down with it.
    await checkSuperblock(image.data.source, image.filesystem);
    return version === undefined ? undefined : unreadableBySystemd(image, version);
  } catch (e) {
    if (e instanceof ExtctlError) return `systemd cannot read it: ${e.message}`;
    throw e;
  } finally {
    await file.close();
  }
}

/** Starts `work` for every item, at most `limit` at a time; the promises keep the input order. */
function limitedMap<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R>[] {
  let running = 0;
  const queue: (() => void)[] = [];
  const release = () => {
    running--;
    queue.shift()?.();
  };
  return items.map(async (item) => {
    if (running >= limit) await new Promise<void>((r) => queue.push(r));
    running++;
    try {
      return await work(item);
    } finally {
      release();
    }
  });
}

async function refreshKind(
  ctx: Context,
  store: ExtensionStore,
  mode: RefreshMode,
): Promise<BootKindRefresh> {
  const kind = store.kind;
  const { refresh } = await import("../domain/activate/refresh.js");
  const { readMerged } = await import("../domain/activate/merged.js");
  // Nothing of this kind on the node and nothing linked: no need to start its tool (and Debian
  // 12 has no systemd-confext at all).
  if (!(await store.exists(store.layout.store)) && (await store.runtimeLinks()).length === 0)
    return { kind, refreshed: false, merged: [], unmerged: [] };
  let refreshed;
  try {
    refreshed = await refresh(ctx, kind, mode);
  } catch (e) {
    const error = e instanceof ExtctlError ? e.message : String(e);
    ctx.log.warn(`refreshing ${kind} failed: ${error}`);
    return { kind, refreshed: false, merged: [], unmerged: [], error };
  }
  const merged = await readMerged(ctx.root, kind);
  if (refreshed.mode === "none") return { kind, refreshed: false, merged, unmerged: [] };
  // Every image boot linked that systemd left out is named, with systemd's reason.
  const { findUnmerged } = await import("../domain/activate/activation.js");
  const unmerged = await findUnmerged(ctx, store, merged, refreshed.skipped);
  for (const u of unmerged)
    ctx.log.warn(
      `${kind} ${u.name} is linked in ${store.layout.runtime} but not merged: ${u.reason}`,
    );
  return { kind, refreshed: true, merged, unmerged };
}

/**
 * The node's policy (--policy, /etc/extctl/policy, the unit drop-ins, trusted boot, default)
 * and the trust module's check. On a trusted (UKI) boot the firmware's keys are imported into
 * /run/verity.d first, as immucore does, so that they are part of the trust store.
 */
export async function nodeTrust(
  ctx: Context,
  options: { policy?: string; uki?: boolean; efivarsDir?: string; cmdlineFile?: string } = {},
): Promise<BootTrust> {
  const policyModule = await import("../domain/trust/policy.js");
  const resolved = await policyModule.resolvePolicy(
    ctx,
    options.policy,
    options.cmdlineFile ? { cmdlineFile: options.cmdlineFile } : {},
  );
  const importedKeys: string[] = [];
  if (options.uki) {
    const { importEfiKeys } = await import("../domain/trust/efi.js");
    // db only, as `trust import-efi` by default: PK and KEK sign changes to db, not what boots.
    const imported = await importEfiKeys(ctx, options.efivarsDir);
    importedKeys.push(...imported.imported.map((k) => k.path));
  }
  const policy = resolved.policy;
  const base = {
    policy: policy.name === "custom" ? policy.text : policy.name,
    source: resolved.source,
    importedKeys,
  };
  if (policy.name === "any") {
    // Everything passes `any`: no need to read a single image.
    return { ...base, check: async () => ({ ok: true, outcome: "unchecked" }) };
  }
  const { loadTrustStore } = await import("../domain/trust/truststore.js");
  const store = await loadTrustStore(ctx);
  for (const w of store.warnings) ctx.log.warn(w);
  const { evaluateImage } = await import("../domain/trust/image-trust.js");
  return {
    ...base,
    async check(hostPath) {
      // Signature and superblock checks only: a full read of every block is `verify --full`'s
      // job, and dm-verity checks the blocks as they are read after the merge.
      const verdict = await evaluateImage(ctx, hostPath, policy, store);
      return { ok: verdict.ok, outcome: verdict.outcome, reason: verdict.reason };
    },
  };
}
