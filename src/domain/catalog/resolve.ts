// Which version of an extension a node takes from its catalogs, as Kairos decides it (spec
// section 6): latest, an exact tag (a pin) or the highest tag satisfying a semver constraint,
// passing over versions with no image for this host's architecture unless one was asked for
// exactly; and staged rollouts (a tag gated to a percentage of nodes).
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
  /** Told when a bare name falls back past `latest`. */
  log?: (message: string) => void;
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
  return capped(layer.tags.map((t) => t.tag));
}

function capped(items: readonly string[], max = 20): string {
  if (items.length === 0) return "none";
  const shown = items.slice(0, max).join(", ");
  return items.length > max ? `${shown}, and ${items.length - max} more` : shown;
}

/** The architectures a tag publishes a kind for, usable or not (an unusable one still counts). */
function publishedArches(tag: CatalogTag, kind: ExtensionKind): string[] {
  return [
    ...new Set([...Object.keys(tag.images[kind] ?? {}), ...Object.keys(tag.invalid?.[kind] ?? {})]),
  ].sort();
}

function hasImage(tag: CatalogTag, kind: ExtensionKind, arch: string): boolean {
  return tag.images[kind]?.[arch] !== undefined || tag.invalid?.[kind]?.[arch] !== undefined;
}

/** "2.1.7 (none), 2.1.6 (amd64, arm64)": what each tag publishes, for messages. */
function publishedPerTag(tags: readonly CatalogTag[], kind: ExtensionKind): string {
  return capped(
    tags.map((t) => {
      const arches = publishedArches(t, kind);
      return `${t.tag} (${arches.length === 0 ? "none" : arches.join(", ")})`;
    }),
  );
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
 * The versions a bare name may fall back to, newest first: semver releases up to `latest`
 * (highest first; a pre-release is never a fallback), then tags that are not semver by
 * publication (newestFirst).
 */
function fallbackOrder(layer: CatalogLayer, latest: CatalogTag | undefined): CatalogTag[] {
  const ceiling = latest === undefined ? undefined : tagVersion(latest.tag);
  const releases = bySemverDescending(layer.tags)
    .filter(({ version }) => !(version.split("+")[0] as string).includes("-"))
    .filter(({ version }) => ceiling === undefined || semver.compare(version, ceiling) <= 0)
    .map(({ tag }) => tag);
  const others = newestFirst(layer.tags).filter((t) => tagVersion(t.tag) === undefined);
  return [...releases, ...others].filter((t) => t !== latest);
}

/**
 * Picks the tag of `layer` for a request. Versions that publish no image of this kind for this
 * architecture are passed over, as newer Kairos does (a tag with `"sysext": {}` is normal: the
 * images are pushed by a later build step than the tag list), except when asked for exactly:
 * - no request: the layer's `latest` when it publishes for this architecture and this node is in
 *   its rollout wave; otherwise the newest version that does (fallbackOrder).
 * - a request equal to a tag: exactly that tag (a pin), gated or not: the user asked for it; it
 *   must publish for this architecture.
 * - otherwise a semver constraint: the highest satisfying semver tag that publishes for this
 *   architecture, skipping tags gated by a rollout this node is not in; non-semver tags never
 *   satisfy one.
 * The chosen entry's reference must be usable (catalog.ts keeps an unusable one as invalid).
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
  const publishes = (tag: CatalogTag) => hasImage(tag, kind, arch);
  const wave = (tag: CatalogTag) => inWave(tag, layer.name, machineId);
  let chosen: ChosenTag;
  if (requested === undefined || requested.trim() === "") {
    const latest =
      layer.latest === undefined ? undefined : layer.tags.find((t) => t.tag === layer.latest);
    if (latest && publishes(latest) && wave(latest)) {
      chosen = { tag: latest, pinned: false, ...rolloutField(latest, layer.name, machineId) };
    } else {
      const fallback = fallbackOrder(layer, latest).find((t) => publishes(t) && wave(t));
      if (!fallback) {
        if (latest && publishes(latest)) {
          throw new ExtctlError(
            "not-found",
            `the latest version ${latest.tag} of ${layer.name} in ${where} is rolled out to ${latest.rollout?.percent}% of nodes, not yet to this one, and no older version this node may take has a ${kind} for ${arch}`,
            { hint: `ask for ${latest.tag} explicitly to take it now` },
          );
        }
        if (layer.tags.length === 0) throw unavailable("latest", ": the catalog lists no version");
        throw new ExtctlError(
          "not-found",
          `no version of ${layer.name} in ${where} has a ${kind} for ${arch} (published: ${publishedPerTag(layer.tags, kind)})`,
          { hint: `the catalog publishes no ${kind} of ${layer.name} this node can use` },
        );
      }
      if (latest) {
        options.log?.(
          `${layer.name}: the latest version ${latest.tag} ${publishes(latest) ? "is in a staged rollout this node is not part of yet" : `has no ${kind} for ${arch}`}; taking ${fallback.tag}`,
        );
      }
      chosen = { tag: fallback, pinned: false, ...rolloutField(fallback, layer.name, machineId) };
    }
  } else {
    const exact = layer.tags.find((t) => t.tag === requested);
    if (exact) {
      if (!publishes(exact)) {
        const arches = publishedArches(exact, kind);
        throw new ExtctlError(
          "not-found",
          arches.length === 0
            ? `version ${exact.tag} of ${layer.name} in ${where} has no ${kind} image for any architecture`
            : `version ${exact.tag} of ${layer.name} in ${where} has no ${kind} for ${arch} (published: ${arches.join(", ")})`,
          {
            hint: `ask for a version that publishes a ${kind} for ${arch} (\`extctl versions ${layer.name}\`)`,
          },
        );
      }
      chosen = { tag: exact, pinned: true, ...rolloutField(exact, layer.name, machineId) };
    } else {
      const range = semverRange(requested);
      if (range === undefined) throw unavailable(requested);
      const satisfying = bySemverDescending(layer.tags).filter(({ version }) =>
        semver.satisfies(version, range),
      );
      if (satisfying.length === 0) throw unavailable(requested);
      const inWaveTags = satisfying.filter(({ tag }) => wave(tag));
      if (inWaveTags.length === 0) {
        throw new ExtctlError(
          "not-found",
          `every version of ${layer.name} in ${where} that satisfies ${requested} (${satisfying.map((s) => s.tag.tag).join(", ")}) is in a staged rollout this node is not part of yet`,
          { hint: "ask for one of those tags explicitly to take it now" },
        );
      }
      const best = inWaveTags.find(({ tag }) => publishes(tag));
      if (!best) {
        throw new ExtctlError(
          "not-found",
          `no version of ${layer.name} in ${where} that satisfies ${requested} has a ${kind} for ${arch} (satisfying: ${publishedPerTag(
            inWaveTags.map((s) => s.tag),
            kind,
          )})`,
          {
            hint: `widen the constraint, or ask for a version that publishes a ${kind} for ${arch}`,
          },
        );
      }
      chosen = { tag: best.tag, pinned: false, ...rolloutField(best.tag, layer.name, machineId) };
    }
  }
  const invalid = chosen.tag.invalid?.[kind]?.[arch];
  if (invalid !== undefined) {
    throw new ExtctlError(
      "catalog",
      `version ${chosen.tag.tag} of ${layer.name} in ${where} cannot be installed: ${invalid}`,
      {
        hint: "the catalog's publisher must fix that reference; until then ask for another version (NAME@VERSION)",
      },
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
    ...(options.log === undefined ? {} : { log: options.log }),
  });
  const images = chosen.tag.images[options.kind] ?? {};
  const resolution: Resolution = {
    name,
    version: chosen.tag.tag,
    reference: `oci://${images[options.arch] as string}`,
    catalog: catalog.url,
    shadowed,
    pinned: chosen.pinned,
    architectures: publishedArches(chosen.tag, options.kind),
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
