// From a spec and the node as it is, the steps that make the node match: install, link, unlink,
// remove, refresh (plus policy and trust files). Nothing here changes the node.
import path from "node:path";
import type { Context } from "../../util/context.js";
import { READ_CAPS, readInRoot } from "../../util/bounded-read.js";
import { ExtctlError } from "../../util/errors.js";
import { ExtensionStore } from "../store/store.js";
import { EXTENSION_KINDS, PROFILES, type ExtensionKind, type Profile } from "../store/layout.js";
import { isLiveProfile, readSentinels } from "../activate/boot-state.js";
import { VersionedStore, storeFileName } from "../store/versions.js";
import type { NetOptions } from "../lifecycle/steps.js";
import type { ApplyEntry, ApplySpec, CatalogEntry } from "./schema.js";
import { readApplyState, type ApplyState } from "./state.js";

export const POLICY_FILE = "/etc/extctl/policy";
export const TRUST_DIR = "/etc/verity.d";

export type PlanStep =
  | { step: "policy"; policy: string }
  | { step: "trust"; cert: string; path: string }
  | {
      step: "install";
      kind: ExtensionKind;
      source: string;
      sha256?: string;
      name?: string;
      replaces?: string;
    }
  | {
      /** A catalog entry not installed by name yet: installByName. */
      step: "install-name";
      kind: ExtensionKind;
      name: string;
      requested?: string;
      version: string;
      reference: string;
      catalog: string;
      line: number;
    }
  | {
      /** A catalog entry whose constraint now picks another version: upgrade. */
      step: "upgrade";
      kind: ExtensionKind;
      name: string;
      requested?: string;
      from: string;
      to: string;
      reference: string;
      /** The file asks for another constraint (or catalogs) than the one recorded. */
      changedRequest: boolean;
      /** The request names a published tag exactly. */
      pinned: boolean;
      line: number;
    }
  | {
      /** A catalog entry whose current version is the one its constraint picks. */
      step: "up-to-date";
      kind: ExtensionKind;
      name: string;
      requested?: string;
      version: string;
      /** The file's constraint or catalogs differ from the recorded ones: apply records them. */
      changedRequest: boolean;
      pinned: boolean;
      /** Why it stays (a version rolled back from is not taken again). */
      reason?: string;
      line: number;
    }
  | { step: "link"; kind: ExtensionKind; name: string; profile: Profile }
  | { step: "unlink"; kind: ExtensionKind; name: string; profile: Profile }
  | { step: "link-runtime"; kind: ExtensionKind; name: string; profile: Profile }
  | { step: "unlink-runtime"; kind: ExtensionKind; name: string }
  | { step: "remove"; kind: ExtensionKind; name: string }
  | { step: "refresh"; kind: ExtensionKind };

export function describeStep(s: PlanStep): string {
  switch (s.step) {
    case "policy":
      return `set the image policy to ${s.policy} (${POLICY_FILE})`;
    case "trust":
      return `trust ${s.cert} (${s.path})`;
    case "install":
      return `install ${s.kind} ${s.name ?? "(name known after download)"} from ${s.source}${s.replaces ? ` (replaces the image from ${s.replaces})` : ""}`;
    case "install-name":
      return `install ${s.kind} ${s.name} ${s.version}${s.requested === undefined ? " (latest)" : ` (${s.requested})`} from ${s.catalog}`;
    case "upgrade":
      return `upgrade ${s.kind} ${s.name} ${s.from} -> ${s.to}${s.requested === undefined ? " (latest)" : ` (${s.requested})`}`;
    case "up-to-date":
      return `${s.kind} ${s.name} ${s.version} is up to date${s.requested === undefined ? "" : ` (${s.requested})`}${s.reason ? `: ${s.reason}` : ""}${s.changedRequest ? "; records the file's version request" : ""}`;
    case "link":
      return `enable ${s.kind} ${s.name} in ${s.profile}`;
    case "unlink":
      return `disable ${s.kind} ${s.name} in ${s.profile}`;
    case "link-runtime":
      return `link ${s.kind} ${s.name} into /run (booted in ${s.profile})`;
    case "unlink-runtime":
      return `unlink ${s.kind} ${s.name} from /run`;
    case "remove":
      return `remove ${s.kind} ${s.name} (not listed; prune)`;
    case "refresh":
      return `refresh ${s.kind}`;
  }
}

/** The store file name a source gives, when it can be told without fetching. */
export function predictName(source: string): string | undefined {
  if (source.startsWith("oci:")) return undefined;
  let pathname: string;
  try {
    pathname = new URL(source).pathname;
  } catch {
    return undefined;
  }
  const last = pathname.split("/").filter(Boolean).at(-1);
  if (!last) return undefined;
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

/** Which store name each entry stands for: the recorded one for its source, else predicted;
 * NAME.raw for an entry from the catalogs. */
function nameFor(entry: ApplyEntry, state: ApplyState): string | undefined {
  if (entry.from === "catalog") return storeFileName(entry.name);
  for (const [name, record] of Object.entries(state[entry.kind])) {
    if (record.source === entry.source) return name;
  }
  return predictName(entry.source);
}

function certName(nodePath: string): string {
  const base = path.posix.basename(nodePath).replace(/\.(crt|pem|cer)$/, "");
  return `extctl-${base}.crt`;
}

export interface ComputedPlan {
  steps: PlanStep[];
  state: ApplyState;
}

/** Whether a step changes the node (an up-to-date catalog entry does not, unless it records). */
export function changesNode(s: PlanStep): boolean {
  return s.step !== "up-to-date" || s.changedRequest;
}

/** The file's catalog entry as an error at its line, in the schema's style. */
function entryError(spec: ApplySpec, entry: ApplyEntry, e: unknown): ExtctlError {
  const inner =
    e instanceof ExtctlError ? e : new ExtctlError("config", (e as Error).message ?? String(e));
  return new ExtctlError(
    inner.code,
    `${spec.file}:${entry.line}: ${entry.field}: ${inner.message}`,
    {
      cause: e,
      ...(inner.hint === undefined ? {} : { hint: inner.hint }),
      ...(inner.exitCode === undefined ? {} : { exitCode: inner.exitCode }),
    },
  );
}

export interface PlanOptions {
  /** Catalog, TLS and registry options (the file's catalogs: go in `catalogs`). */
  net?: NetOptions;
  /** false: no catalog look-ups (the second pass after the installs, which only links). */
  resolve?: boolean;
}

interface Resolver {
  resolve(
    entry: CatalogEntry,
    recorded: readonly string[],
  ): Promise<{
    version: string;
    reference: string;
    catalog: string;
    pinned: boolean;
  }>;
}

async function catalogResolver(ctx: Context, net: NetOptions): Promise<Resolver> {
  const [{ CatalogCache, nodeIdentity }, { resolveExtension }] = await Promise.all([
    import("../lifecycle/steps.js"),
    import("../catalog/resolve.js"),
  ]);
  // Planning remembers no catalog's `generated` time; installByName and upgrade do when they run.
  const cache = new CatalogCache(ctx, net, false);
  let identity: Promise<{ arch: string; machineId?: string }> | undefined;
  return {
    async resolve(entry, recorded) {
      const { catalogs } = await cache.get(recorded);
      return resolveExtension(catalogs, entry.name, entry.requested, {
        kind: entry.kind,
        ...(await (identity ??= nodeIdentity(ctx))),
        log: (m) => ctx.log.info(m),
      });
    },
  };
}

/** install NAME VERSION, upgrade NAME FROM -> TO, or up to date, for one catalog entry. */
async function planCatalogEntry(
  spec: ApplySpec,
  entry: CatalogEntry,
  store: ExtensionStore,
  resolver: Resolver,
): Promise<PlanStep> {
  const versions = new VersionedStore(store);
  const record = await versions.read(entry.name);
  const current = record ? await versions.current(record) : undefined;
  const resolution = await resolver.resolve(entry, record?.catalogs ?? []);
  const requested = entry.requested === undefined ? {} : { requested: entry.requested };
  if (!record || !current)
    return {
      step: "install-name",
      kind: entry.kind,
      name: entry.name,
      ...requested,
      version: resolution.version,
      reference: resolution.reference,
      catalog: resolution.catalog,
      line: entry.line,
    };
  const changedRequest =
    record.requested !== entry.requested ||
    (spec.catalogs !== undefined &&
      JSON.stringify(record.catalogs) !== JSON.stringify(spec.catalogs));
  const upToDate = {
    step: "up-to-date" as const,
    kind: entry.kind,
    name: entry.name,
    ...requested,
    version: current.version,
    changedRequest,
    pinned: resolution.pinned,
    line: entry.line,
  };
  if (resolution.reference === current.reference) return upToDate;
  if (!changedRequest && !resolution.pinned && record.rolledBack.includes(resolution.version))
    return {
      ...upToDate,
      reason: `${resolution.version} was rolled back from; \`install ${entry.name}@${resolution.version}\` takes it again`,
    };
  return {
    step: "upgrade",
    kind: entry.kind,
    name: entry.name,
    ...requested,
    from: current.version,
    to: resolution.version,
    reference: resolution.reference,
    changedRequest,
    pinned: resolution.pinned,
    line: entry.line,
  };
}

export async function computePlan(
  ctx: Context,
  spec: ApplySpec,
  options: PlanOptions = {},
): Promise<ComputedPlan> {
  const steps: PlanStep[] = [];
  const state = await readApplyState(ctx.root, (m) => ctx.log.warn(m));

  if (spec.policy !== undefined) {
    const current = (
      await readInRoot(ctx.root, POLICY_FILE, { cap: READ_CAPS.config, what: "the trust policy" })
    )?.toString("utf8");
    if (current?.trim() !== spec.policy) steps.push({ step: "policy", policy: spec.policy });
  }
  for (const cert of spec.trust) {
    const wanted = await readInRoot(ctx.root, cert, {
      cap: READ_CAPS.certificate,
      what: "a certificate to trust",
    });
    if (wanted === undefined) {
      throw new ExtctlError(
        "not-found",
        `the trusted certificate ${cert} does not exist on the node`,
        {
          hint: "put it there first, or fix the trust: list",
        },
      );
    }
    const target = `${TRUST_DIR}/${certName(cert)}`;
    if (path.posix.dirname(cert) === TRUST_DIR && cert.endsWith(".crt")) continue;
    const current = await readInRoot(ctx.root, target, { cap: READ_CAPS.certificate }).catch(
      () => undefined,
    );
    if (!current?.equals(wanted)) steps.push({ step: "trust", cert, path: target });
  }

  const sentinels = await readSentinels(ctx.root);
  const refresh = new Set<ExtensionKind>();
  const installs: PlanStep[] = [];
  const links: PlanStep[] = [];
  const removes: PlanStep[] = [];
  let resolver: Resolver | undefined;
  for (const kind of EXTENSION_KINDS) {
    const store = new ExtensionStore(ctx.root, kind);
    const entries = spec.entries.filter((e) => e.kind === kind);
    const images = new Set(await store.images());
    // Store images linked in /run, whatever the link's name (252-254: tool.sysext.raw as tool.raw).
    const runtimeLinks = await store.runtimeImages();
    const runtime = new Set(runtimeLinks.values());
    const listed = new Map<string, ApplyEntry>();
    for (const entry of entries) {
      const name = nameFor(entry, state);
      if (name !== undefined) {
        const other = listed.get(name);
        if (other)
          throw new ExtctlError(
            "config",
            `${entry.field} (line ${entry.line}) and ${other.field} (line ${other.line}) both give the image ${name}`,
            { hint: "list each image once" },
          );
        listed.set(name, entry);
      }
      if (entry.from === "catalog") {
        if (options.resolve !== false) {
          resolver ??= await catalogResolver(ctx, {
            ...options.net,
            ...(spec.catalogs ? { catalogs: spec.catalogs } : {}),
          });
          const step = await planCatalogEntry(spec, entry, store, resolver).catch((e: unknown) => {
            throw entryError(spec, entry, e);
          });
          installs.push(step);
          if (step.step === "install-name" && entry.now && runtime.has(name as string))
            refresh.add(kind);
        }
      }
      const record = name === undefined ? undefined : state[kind][name];
      const needsInstall =
        entry.from === "uri" &&
        (name === undefined ||
          !images.has(name) ||
          record === undefined ||
          record.source !== entry.source ||
          (entry.sha256 !== undefined && record.sha256 !== entry.sha256));
      if (needsInstall) {
        installs.push({
          step: "install",
          kind,
          source: entry.source,
          ...(entry.sha256 ? { sha256: entry.sha256 } : {}),
          ...(name ? { name } : {}),
          ...(record && record.source !== entry.source ? { replaces: record.source } : {}),
        });
        if (entry.now && name !== undefined && runtime.has(name)) refresh.add(kind);
      }
      if (name === undefined) continue;
      const enabled = await store.enabledIn(name);
      for (const profile of entry.profiles)
        if (!enabled.includes(profile)) links.push({ step: "link", kind, name, profile });
      for (const profile of enabled)
        if (!entry.profiles.includes(profile)) links.push({ step: "unlink", kind, name, profile });
      if (!entry.now) continue;
      const linkedAs = runtimeLinkOf(runtimeLinks, name);
      const info = await store.linkInfo(store.runtimeLinkPath(linkedAs));
      const live = entry.profiles.filter((p) => isLiveProfile(p, sentinels));
      const through = PROFILES.find((p) => info?.target === store.profileLinkPath(p, name));
      // Linked under a name the root's systemd does not find its release file under: relinked.
      const misnamed =
        through !== undefined &&
        images.has(name) &&
        linkedAs !== (await wantedLinkName(ctx, store, name));
      if (live.length > 0 && (through === undefined || !live.includes(through) || misnamed)) {
        links.push({ step: "link-runtime", kind, name, profile: live[0] as Profile });
        refresh.add(kind);
      } else if (live.length === 0 && info && through !== undefined) {
        links.push({ step: "unlink-runtime", kind, name });
        refresh.add(kind);
      }
    }
    if (spec.prune) {
      const pendingUnknown = entries.some((e) => nameFor(e, state) === undefined);
      for (const name of images) {
        if (listed.has(name)) continue;
        // An oci: entry not yet installed may turn out to be this image: decide after download.
        if (pendingUnknown && state[kind][name] === undefined) continue;
        if (runtime.has(name)) {
          removes.push({ step: "unlink-runtime", kind, name });
          refresh.add(kind);
        }
        removes.push({ step: "remove", kind, name });
      }
    }
  }
  steps.push(...installs, ...links, ...removes);
  for (const kind of refresh) steps.push({ step: "refresh", kind });
  return { steps, state };
}

/** The /run link that stands for store image `name` (its own name first), else its name. */
function runtimeLinkOf(links: ReadonlyMap<string, string>, name: string): string {
  let found: string | undefined;
  for (const [link, image] of links) {
    if (image !== name) continue;
    if (link === name) return link;
    found ??= link;
  }
  return found ?? name;
}

/** The name extctl links store image `name` under in /run on this root (link-name.ts). */
async function wantedLinkName(ctx: Context, store: ExtensionStore, name: string): Promise<string> {
  const [{ linkNameOfFile }, { dissectingSystemd }] = await Promise.all([
    import("../image/link-name.js"),
    import("../image/host.js"),
  ]);
  const choice = await linkNameOfFile(
    await store.imageFile(name),
    name,
    store.kind,
    await dissectingSystemd(ctx.root),
  );
  return choice?.ok ? choice.linkName : name;
}
