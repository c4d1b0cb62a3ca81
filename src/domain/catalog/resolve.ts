// Which version of an extension a node takes from its catalogs, as Kairos decides it (spec
// section 6): latest, an exact tag (a pin) or the highest tag satisfying a semver constraint;
// then this host's architecture; and staged rollouts (a tag gated to a percentage of nodes).
import { createHash } from "node:crypto";
import semver from "semver";
import { ExtctlError } from "../../util/errors.js";
import type { ExtensionKind } from "../store/layout.js";
import type { Catalog, CatalogLayer, CatalogTag } from "./catalog.js";

export interface Resolution {
  name: string;
  version: string;
  /** "oci://host/repo@sha256:..." */
  reference: string;
  /** The URL of the catalog it came from. */
  catalog: string;
  /** URLs of later catalogs that also publish the name (never used for it). */
  shadowed: string[];
  /** What was asked: undefined (latest), a tag, or a constraint. */
  requested?: string;
  /** The request named a tag exactly. */
  pinned: boolean;
  /** The chosen tag's rollout gate, and whether this node is in its wave. */
  rollout?: { percent: number; inWave: boolean };
  /** The Go architectures the chosen tag publishes for the kind. */
  architectures: string[];
}

/** systemd's (ConditionArchitecture), uname's and Node's names, to Go's GOARCH. */
const GOARCH: Readonly<Record<string, string>> = {
  "x86-64": "amd64",
  x86_64: "amd64",
  amd64: "amd64",
  x64: "amd64",
  arm64: "arm64",
  aarch64: "arm64",
  x86: "386",
  i386: "386",
  i486: "386",
  i586: "386",
  i686: "386",
  ia32: "386",
  "386": "386",
  arm: "arm",
  armv6l: "arm",
  armv7l: "arm",
  armhf: "arm",
  riscv64: "riscv64",
  "ppc64-le": "ppc64le",
  ppc64le: "ppc64le",
  ppc64: "ppc64",
  s390x: "s390x",
  loongarch64: "loong64",
  loong64: "loong64",
  "mips64-le": "mips64le",
  mips64el: "mips64le",
  mips64le: "mips64le",
  mips64: "mips64",
  "mips-le": "mipsle",
  mipsel: "mipsle",
  mipsle: "mipsle",
  mips: "mips",
};

/** The Go architecture name catalogs use for a host architecture; unknown names pass through. */
export function goarch(hostArchitecture: string): string {
  const name = hostArchitecture.trim().toLowerCase();
  return GOARCH[name] ?? name;
}

/**
 * Where a node falls in an extension's rollout, in [0, 100): the first 53 bits of
 * sha256(machineId + "\0" + name) as a fraction. Stable per node and extension, independent
 * between extensions, so each rollout picks its own first wave.
 */
export function rolloutBucket(machineId: string, name: string): number {
  const hash = createHash("sha256").update(`${machineId.trim().toLowerCase()}\0${name}`).digest();
  return (Number(hash.readBigUInt64BE(0) >> 11n) / 2 ** 53) * 100;
}

/** The semver of a tag ("2.54.1", or "v2.54.1"), or undefined for "stable", "2.54", ... */
export function tagVersion(tag: string): string | undefined {
  const bare = tag.startsWith("v") ? tag.slice(1) : tag;
  return /^\d/.test(bare) && semver.valid(bare) === bare ? bare : undefined;
}

/**
 * A constraint for node-semver: Masterminds (Kairos's Go library) separates AND-ed comparators
 * with commas (">= 2.50, < 2.55"), node-semver with spaces. Undefined when it is none.
 */
export function semverRange(constraint: string): string | undefined {
  const range = constraint.replace(/,/g, " ").trim();
  if (range === "") return undefined;
  return semver.validRange(range) === null ? undefined : range;
}

export interface ChooseOptions {
  kind: ExtensionKind;
  /** Go architecture (goarch()). */
  arch: string;
  /** /etc/machine-id; without it the node is in no rollout wave. */
  machineId?: string;
  /** The catalog's URL, for messages. */
  catalog?: string;
}

export interface ChosenTag {
  tag: CatalogTag;
  pinned: boolean;
  rollout?: { percent: number; inWave: boolean };
}

function inWave(tag: CatalogTag, name: string, machineId: string | undefined): boolean {
  if (!tag.rollout) return true;
  if (machineId === undefined || machineId.trim() === "") return false;
  return rolloutBucket(machineId, name) < tag.rollout.percent;
}

function gate(
  tag: CatalogTag,
  name: string,
  machineId: string | undefined,
): ChosenTag["rollout"] | undefined {
  return tag.rollout
    ? { percent: tag.rollout.percent, inWave: inWave(tag, name, machineId) }
    : undefined;
}

function publishedList(layer: CatalogLayer): string {
  const tags = layer.tags.map((t) => t.tag);
  if (tags.length === 0) return "none";
  const shown = tags.slice(0, 20).join(", ");
  return tags.length > 20 ? `${shown}, and ${tags.length - 20} more` : shown;
}

function hasImage(tag: CatalogTag, kind: ExtensionKind, arch: string): boolean {
  return tag.images[kind]?.[arch] !== undefined;
}

/** Semver tags, highest first (a "v" prefix and none sort as the same version). */
function bySemverDescending(tags: readonly CatalogTag[]): { tag: CatalogTag; version: string }[] {
  return tags
    .flatMap((tag) => {
      const version = tagVersion(tag.tag);
      return version === undefined ? [] : [{ tag, version }];
    })
    .sort((a, b) => semver.rcompare(a.version, b.version));
}

/**
 * Tags newest first: semver tags highest first, then the others by publication (their `created`
 * time, newest first; without one, in the catalog's order, which Kairos writes newest first).
 */
function newestFirst(tags: readonly CatalogTag[]): CatalogTag[] {
  const semverTags = bySemverDescending(tags).map((s) => s.tag);
  const others = tags
    .map((tag, index) => ({ tag, index, created: tag.created ? Date.parse(tag.created) : NaN }))
    .filter(({ tag }) => !semverTags.includes(tag))
    .sort((a, b) => {
      const byTime = Number.isNaN(a.created) || Number.isNaN(b.created) ? 0 : b.created - a.created;
      return byTime !== 0 ? byTime : a.index - b.index;
    })
    .map(({ tag }) => tag);
  return [...semverTags, ...others];
}

/**
 * Picks the tag of `layer` for a request, and checks that it has an image for this kind and
 * architecture:
 * - no request: the layer's `latest`, nothing else. When latest is gated by a rollout this node
 *   is not part of, the newest tag without a gate that has an image for this kind and
 *   architecture is taken instead (a node outside the wave stays on what everyone runs): the
 *   highest semver, else the newest published (newestFirst).
 * - a request equal to a tag: exactly that tag (a pin), gated or not: the user asked for it.
 * - otherwise a semver constraint: the highest satisfying semver tag, skipping tags gated by a
 *   rollout this node is not in; non-semver tags never satisfy one.
 */
export function chooseTag(
  layer: CatalogLayer,
  requested: string | undefined,
  options: ChooseOptions,
): ChosenTag {
  const where = options.catalog ?? "the catalog";
  const { kind, arch, machineId } = options;
  const unavailable = (version: string, why = "") =>
    new ExtctlError(
      "not-found",
      `version ${version} of ${layer.name} is not available in ${where}${why} (published: ${publishedList(layer)})`,
      { hint: 'ask for a published tag or a semver constraint such as ">= 1.2, < 2"' },
    );
  let chosen: ChosenTag;
  if (requested === undefined || requested.trim() === "") {
    if (layer.latest === undefined) {
      throw unavailable("latest", ": the catalog names no latest version");
    }
    const latest = layer.tags.find((t) => t.tag === layer.latest);
    if (!latest) throw unavailable(`${layer.latest} (its latest)`);
    if (inWave(latest, layer.name, machineId)) {
      chosen = { tag: latest, pinned: false, ...rolloutField(latest, layer.name, machineId) };
    } else {
      const fallback = newestFirst(layer.tags).find(
        (tag) => !tag.rollout && hasImage(tag, kind, arch),
      );
      if (!fallback) {
        throw new ExtctlError(
          "not-found",
          `the latest version ${latest.tag} of ${layer.name} in ${where} is rolled out to ${latest.rollout?.percent}% of nodes, not yet to this one, and no version without a rollout gate has a ${kind} for ${arch}`,
          { hint: `ask for ${latest.tag} explicitly to take it now` },
        );
      }
      chosen = { tag: fallback, pinned: false };
    }
  } else {
    const exact = layer.tags.find((t) => t.tag === requested);
    if (exact) {
      chosen = { tag: exact, pinned: true, ...rolloutField(exact, layer.name, machineId) };
    } else {
      const range = semverRange(requested);
      if (range === undefined) throw unavailable(requested);
      const satisfying = bySemverDescending(layer.tags).filter(({ version }) =>
        semver.satisfies(version, range),
      );
      if (satisfying.length === 0) throw unavailable(requested);
      const best = satisfying.find(({ tag }) => inWave(tag, layer.name, machineId));
      if (!best) {
        throw new ExtctlError(
          "not-found",
          `every version of ${layer.name} in ${where} that satisfies ${requested} (${satisfying.map((s) => s.tag.tag).join(", ")}) is in a staged rollout this node is not part of yet`,
          { hint: "ask for one of those tags explicitly to take it now" },
        );
      }
      chosen = { tag: best.tag, pinned: false, ...rolloutField(best.tag, layer.name, machineId) };
    }
  }
  if (!hasImage(chosen.tag, kind, arch)) {
    const arches = Object.keys(chosen.tag.images[kind] ?? {}).sort();
    throw new ExtctlError(
      "not-found",
      arches.length === 0
        ? `version ${chosen.tag.tag} of ${layer.name} in ${where} has no ${kind} image for any architecture`
        : `version ${chosen.tag.tag} of ${layer.name} in ${where} has no ${kind} for ${arch} (published: ${arches.join(", ")})`,
    );
  }
  return chosen;
}

function rolloutField(
  tag: CatalogTag,
  name: string,
  machineId: string | undefined,
): { rollout?: { percent: number; inWave: boolean } } {
  const rollout = gate(tag, name, machineId);
  return rollout ? { rollout } : {};
}

/** The first catalog publishing `name`, and the later ones that also do. */
function findLayer(
  catalogs: readonly Catalog[],
  name: string,
): { catalog: Catalog; layer: CatalogLayer; shadowed: string[] } | undefined {
  let found: { catalog: Catalog; layer: CatalogLayer; shadowed: string[] } | undefined;
  for (const catalog of catalogs) {
    const layer = catalog.layers.find((l) => l.name === name);
    if (!layer) continue;
    if (found) found.shadowed.push(catalog.url);
    else found = { catalog, layer, shadowed: [] };
  }
  return found;
}

/**
 * Resolves NAME[@requested] through `catalogs`, searched in order: the first that publishes
 * the name wins, and each later one that also does is logged as shadowed.
 */
export function resolveExtension(
  catalogs: readonly Catalog[],
  name: string,
  requested: string | undefined,
  options: {
    kind: ExtensionKind;
    arch: string;
    machineId?: string;
    log?: (message: string) => void;
  },
): Resolution {
  if (requested !== undefined && requested.trim() === "") requested = undefined;
  const found = findLayer(catalogs, name);
  if (!found) {
    throw new ExtctlError(
      "not-found",
      catalogs.length === 0
        ? `no catalog was read, so ${name} cannot be found`
        : `no catalog publishes ${name} (searched: ${catalogs.map((c) => c.url).join(", ")})`,
      { hint: "check the name, or add a catalog with --catalog URL" },
    );
  }
  const { catalog, layer, shadowed } = found;
  for (const url of shadowed) options.log?.(`${name} from ${catalog.url} shadows ${url}`);
  const chosen = chooseTag(layer, requested, {
    kind: options.kind,
    arch: options.arch,
    catalog: catalog.url,
    ...(options.machineId === undefined ? {} : { machineId: options.machineId }),
  });
  const images = chosen.tag.images[options.kind] ?? {};
  const resolution: Resolution = {
    name,
    version: chosen.tag.tag,
    reference: `oci://${images[options.arch] as string}`,
    catalog: catalog.url,
    shadowed,
    pinned: chosen.pinned,
    architectures: Object.keys(images).sort(),
  };
  if (requested !== undefined) resolution.requested = requested;
  if (chosen.rollout) resolution.rollout = chosen.rollout;
  return resolution;
}

export interface OfferedVersion {
  version: string;
  /** "oci://..." when the tag has an image for this kind and architecture. */
  reference?: string;
  catalog: string;
  rollout?: { percent: number };
}

/**
 * What the catalogs offer of `name`: every tag of the first catalog publishing it (the one
 * resolveExtension uses), semver tags highest first, then the others in catalog order. A tag
 * without an image for this kind and architecture has no reference.
 */
export function offeredVersions(
  catalogs: readonly Catalog[],
  name: string,
  options: { kind: ExtensionKind; arch: string },
): OfferedVersion[] {
  const found = findLayer(catalogs, name);
  if (!found) return [];
  const semverTags = bySemverDescending(found.layer.tags).map((s) => s.tag);
  const others = found.layer.tags.filter((t) => !semverTags.includes(t));
  return [...semverTags, ...others].map((tag) => {
    const reference = tag.images[options.kind]?.[options.arch];
    return {
      version: tag.tag,
      ...(reference === undefined ? {} : { reference: `oci://${reference}` }),
      catalog: found.catalog.url,
      ...(tag.rollout ? { rollout: { percent: tag.rollout.percent } } : {}),
    };
  });
}
