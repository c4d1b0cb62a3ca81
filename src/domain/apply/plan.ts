// From a spec and the node as it is, the steps that make the node match: install, link, unlink,
// remove, refresh (plus policy and trust files). Nothing here changes the node.
import path from "node:path";
import type { Context } from "../../util/context.js";
import { READ_CAPS, readInRoot } from "../../util/bounded-read.js";
import { ExtctlError } from "../../util/errors.js";
import { ExtensionStore } from "../store/store.js";
import { EXTENSION_KINDS, PROFILES, type ExtensionKind, type Profile } from "../store/layout.js";
import { isLiveProfile, readSentinels } from "../activate/boot-state.js";
import type { ApplyEntry, ApplySpec } from "./schema.js";
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

/** Which store name each entry stands for: the recorded one for its source, else predicted. */
function nameFor(entry: ApplyEntry, state: ApplyState): string | undefined {
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

export async function computePlan(ctx: Context, spec: ApplySpec): Promise<ComputedPlan> {
  const steps: PlanStep[] = [];
  const state = await readApplyState(ctx.root);

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
  for (const kind of EXTENSION_KINDS) {
    const store = new ExtensionStore(ctx.root, kind);
    const entries = spec.entries.filter((e) => e.kind === kind);
    const images = new Set(await store.images());
    const runtime = new Set(await store.runtimeLinks());
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
      const record = name === undefined ? undefined : state[kind][name];
      const needsInstall =
        name === undefined ||
        !images.has(name) ||
        record === undefined ||
        record.source !== entry.source ||
        (entry.sha256 !== undefined && record.sha256 !== entry.sha256);
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
      const info = await store.linkInfo(store.runtimeLinkPath(name));
      const live = entry.profiles.filter((p) => isLiveProfile(p, sentinels));
      const through = PROFILES.find((p) => info?.target === store.profileLinkPath(p, name));
      if (live.length > 0 && (through === undefined || !live.includes(through))) {
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
