// The extension catalog (Kairos's `releases.json`, the "sysext hub"): parsed and checked field by
// field, since a catalog is untrusted input; every refusal names the catalog and the JSON path.
// A bad image entry spoils only that entry (as in Kairos): it is kept with its problem, refused
// when something resolves to it, and reported as a warning; the rest of the catalog stays usable.
import { ExtctlError } from "../../util/errors.js";
import { canonicalRegistryHost } from "../oci/registry-host.js";
import { EXTENSION_KINDS, type ExtensionKind } from "../store/layout.js";

/** The largest catalog extctl reads: Kairos's own is a few hundred KiB. */
export const MAX_CATALOG_BYTES = 8 * 1024 * 1024;
/** A detached catalog signature (PKCS#7) is small; more is not one. */
export const MAX_CATALOG_SIGNATURE_BYTES = 1024 * 1024;
/** Where a catalog's detached signature lives: the catalog's URL or file name plus this. */
export const SIGNATURE_SUFFIX = ".p7s";

/** The URL schemes catalogs are read from (catalog/fetch.ts has a reader for each; never http). */
export const CATALOG_SCHEMES = ["https", "file", "oci"] as const;
export type CatalogScheme = (typeof CATALOG_SCHEMES)[number];

/** "https:, file: or oci:", for messages. */
export function catalogSchemeList(suffix = ":"): string {
  const names = CATALOG_SCHEMES.map((s) => s + suffix);
  return `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}

/** The catalog scheme of `url` (lower case), or undefined for any other URL. */
export function catalogSchemeOf(url: string): CatalogScheme | undefined {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  return CATALOG_SCHEMES.find((s) => s === scheme);
}

const MAX_LAYERS = 10_000;
const MAX_TAGS = 10_000;
const MAX_TEXT = 64 * 1024;

export interface CatalogTag {
  tag: string;
  /** The tag's image digest as the catalog states it (display only). */
  digest?: string;
  created?: string;
  /** Per kind, per Go architecture: the pinned reference `host[:port]/repo@sha256:<64 hex>`. */
  images: Partial<Record<ExtensionKind, Record<string, string>>>;
  /**
   * Per kind, per Go architecture: an entry that publishes something unusable (a tag-only or
   * upper-case reference, a non-string `oci`), with why. It counts as published, so resolving
   * never falls past it to an older version, and resolving to it is refused with this text.
   */
  invalid?: Partial<Record<ExtensionKind, Record<string, string>>>;
  /** A staged rollout: only nodes whose rollout bucket is below `percent` take this tag. */
  rollout?: { percent: number };
}

export interface CatalogLayer {
  name: string;
  latest?: string;
  tags: CatalogTag[];
  title?: string;
  description?: string;
}

export interface Catalog {
  /** Where it was read from (names it in every message). */
  url: string;
  /** When it was generated (ISO 8601); guards against a replayed older catalog. */
  generated?: string;
  repo?: string;
  layers: CatalogLayer[];
  /** Entries that were dropped or kept as unusable, each with its JSON path and why. */
  warnings: string[];
}

// A registry host (a dot, a port or localhost: never a Docker Hub short name), a repository path
// in the distribution spec's grammar, and a sha256 digest; no scheme and no tag.
const HOST = String.raw`(?:localhost|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::\d{1,5})?`;
const COMPONENT = String.raw`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`;
const PINNED_REFERENCE = new RegExp(
  String.raw`^(${HOST})/${COMPONENT}(?:/${COMPONENT})*@sha256:[a-f0-9]{64}$`,
);
const GOARCH = /^[a-z0-9_]{1,32}$/;
const LAYER_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** Why `reference` is not a digest-pinned OCI reference, or undefined when it is one. */
export function pinnedReferenceProblem(reference: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(reference)) {
    return "has a scheme; write host/repository@sha256:<64 hex digits>";
  }
  if (!reference.includes("@")) return "is not pinned to a digest (@sha256:<64 hex digits>)";
  const match = PINNED_REFERENCE.exec(reference);
  if (!match) {
    return "is not host[:port]/repository@sha256:<64 hex digits> (a tag, an uppercase letter or a missing registry host?)";
  }
  const host = match[1] as string;
  if (host !== "localhost" && !host.includes(".") && !host.includes(":")) {
    return `starts with "${host}", which is not a registry host (no dot or port)`;
  }
  const port = /:(\d+)$/.exec(host);
  if (port && Number(port[1]) > 65535) return `names port ${port[1]}, which is not a port`;
  const canonical = canonicalRegistryHost(host);
  if (canonical.problem !== undefined)
    return `names the registry "${host}", which ${canonical.problem}`;
  return undefined;
}

/** An ISO 8601 date and time with a zone, as Kairos's generator writes it. */
function isIsoTime(text: string): boolean {
  return (
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/.test(text) &&
    !Number.isNaN(Date.parse(text))
  );
}

/**
 * A pinned reference with its registry in the canonical form (registry-host.ts), as every other
 * reference has it: a catalog's `LOCALHOST:5001/...` is blocked, mirrored and authenticated
 * exactly as `localhost:5001/...`. Call after pinnedReferenceProblem found none.
 */
export function canonicalPinnedReference(reference: string): string {
  const slash = reference.indexOf("/");
  const host = canonicalRegistryHost(reference.slice(0, slash)).host as string;
  return host + reference.slice(slash);
}

class CatalogReader {
  readonly warnings: string[] = [];

  constructor(private readonly url: string) {}

  /** A problem confined to one entry: noted, and the caller drops or marks that entry. */
  note(path: string, why: string): void {
    this.warnings.push(`${path} ${why}`);
  }

  bad(path: string, why: string): never {
    throw new ExtctlError("catalog", `the catalog ${this.url} is invalid: ${path} ${why}`, {
      hint: "fix the catalog where it is published, or remove it from the catalog list",
    });
  }

  object(value: unknown, path: string): Record<string, unknown> {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.bad(path, "is not an object");
    }
    return value as Record<string, unknown>;
  }

  /** An optional object: absent and null mean none. */
  optionalObject(value: unknown, path: string): Record<string, unknown> | undefined {
    return value === undefined || value === null ? undefined : this.object(value, path);
  }

  text(value: unknown, path: string): string {
    if (typeof value !== "string") this.bad(path, "is not a string");
    if (value.length > MAX_TEXT) this.bad(path, `is longer than ${MAX_TEXT} characters`);
    return value;
  }

  optionalText(value: unknown, path: string): string | undefined {
    return value === undefined || value === null ? undefined : this.text(value, path);
  }

  time(value: unknown, path: string): string | undefined {
    const text = this.optionalText(value, path);
    if (text === undefined) return undefined;
    if (!isIsoTime(text)) {
      this.bad(path, `is not an ISO 8601 time such as 2026-09-01T08:24:03Z: "${text}"`);
    }
    return text;
  }

  array(value: unknown, path: string, max: number): unknown[] {
    if (!Array.isArray(value)) this.bad(path, "is not an array");
    if (value.length > max) this.bad(path, `has more than ${max} entries`);
    return value;
  }

  catalog(value: unknown): Catalog {
    const top = this.object(value, "the top level");
    const catalog: Catalog = { url: this.url, layers: [], warnings: this.warnings };
    const generated = this.time(top.generated, "generated");
    if (generated !== undefined) catalog.generated = generated;
    const repo = this.optionalText(top.repo, "repo");
    if (repo !== undefined) catalog.repo = repo;
    if (top.layers === undefined) this.bad("layers", "is missing");
    const seen = new Set<string>();
    this.array(top.layers, "layers", MAX_LAYERS).forEach((item, i) => {
      const layer = this.layer(item, `layers[${i}]`);
      if (seen.has(layer.name)) this.bad(`layers[${i}].name`, `repeats "${layer.name}"`);
      seen.add(layer.name);
      catalog.layers.push(layer);
    });
    return catalog;
  }

  layer(value: unknown, path: string): CatalogLayer {
    const fields = this.object(value, path);
    const name = this.text(fields.name, `${path}.name`);
    if (!LAYER_NAME.test(name)) {
      this.bad(
        `${path}.name`,
        `"${name}" is not an extension name (letters, digits, '.', '_', '+', '-')`,
      );
    }
    const layer: CatalogLayer = { name, tags: [] };
    const latest = this.optionalText(fields.latest, `${path}.latest`);
    if (latest !== undefined && latest !== "") layer.latest = latest;
    const title = this.optionalText(fields.title, `${path}.title`);
    if (title !== undefined) layer.title = title;
    const description = this.optionalText(fields.description, `${path}.description`);
    if (description !== undefined) layer.description = description;
    const tags = fields.tags === undefined || fields.tags === null ? [] : fields.tags;
    const seen = new Set<string>();
    this.array(tags, `${path}.tags`, MAX_TAGS).forEach((item, i) => {
      const tag = this.tag(item, `${path}.tags[${i}]`);
      if (seen.has(tag.tag)) this.bad(`${path}.tags[${i}].tag`, `repeats "${tag.tag}"`);
      seen.add(tag.tag);
      layer.tags.push(tag);
    });
    return layer;
  }

  tag(value: unknown, path: string): CatalogTag {
    const fields = this.object(value, path);
    const name = this.text(fields.tag, `${path}.tag`);
    if (name === "" || name.length > 128 || /[\s\p{Cc}]/u.test(name)) {
      this.bad(`${path}.tag`, `"${name}" is not a version tag (1 to 128 printable characters)`);
    }
    const tag: CatalogTag = { tag: name, images: {} };
    // digest and created are for display: a bad one is dropped, not a reason to refuse.
    const digest = fields.digest;
    if (typeof digest === "string" && DIGEST.test(digest)) tag.digest = digest;
    else if (digest !== undefined && digest !== null && digest !== "")
      this.note(`${path}.digest`, "is not sha256:<64 hex digits>; ignored");
    const created = fields.created;
    if (typeof created === "string" && isIsoTime(created)) tag.created = created;
    else if (created !== undefined && created !== null && created !== "")
      this.note(`${path}.created`, "is not an ISO 8601 time; ignored");
    for (const kind of EXTENSION_KINDS) {
      const images = this.images(fields[kind], `${path}.${kind}`);
      if (!images) continue;
      tag.images[kind] = images.valid;
      if (Object.keys(images.invalid).length > 0) (tag.invalid ??= {})[kind] = images.invalid;
    }
    const rollout = this.optionalObject(fields.rollout, `${path}.rollout`);
    if (rollout) {
      const percent = rollout.percent;
      if (
        typeof percent !== "number" ||
        !Number.isFinite(percent) ||
        percent < 0 ||
        percent > 100
      ) {
        this.bad(`${path}.rollout.percent`, "is not a number from 0 to 100");
      }
      tag.rollout = { percent };
    }
    return tag;
  }

  /**
   * One tag's images of a kind, per architecture. An empty or absent `oci` publishes nothing
   * there (as an empty `"sysext": {}` does); anything else that is not a pinned reference is kept
   * as invalid with its problem, so only resolving to it fails.
   */
  images(
    value: unknown,
    path: string,
  ): { valid: Record<string, string>; invalid: Record<string, string> } | undefined {
    const byArch = this.optionalObject(value, path);
    if (!byArch) return undefined;
    const valid: Record<string, string> = {};
    const invalid: Record<string, string> = {};
    for (const [arch, entry] of Object.entries(byArch)) {
      const where = `${path}.${arch}`;
      if (!GOARCH.test(arch)) {
        this.note(path, `has "${arch}", which is not a Go architecture; ignored`);
        continue;
      }
      let why: string | undefined;
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        why = `${where} is not an object`;
      } else {
        const reference = (entry as Record<string, unknown>).oci;
        if (reference === undefined || reference === null || reference === "") continue;
        if (typeof reference !== "string") why = `${where}.oci is not a string`;
        else {
          const problem = pinnedReferenceProblem(reference);
          if (problem === undefined) valid[arch] = canonicalPinnedReference(reference);
          else why = `${where}.oci "${reference.slice(0, 300)}" ${problem}`;
        }
      }
      if (why !== undefined) {
        invalid[arch] = why;
        this.warnings.push(`${why}; that image cannot be installed`);
      }
    }
    return { valid, invalid };
  }
}

/**
 * Parses a catalog read from `url`. Refuses more than MAX_CATALOG_BYTES before parsing and JSON
 * that is not a catalog; an image reference that is not pinned to a digest spoils only its entry
 * (listed in `warnings`).
 */
export function parseCatalog(bytes: Buffer, url: string): Catalog {
  const reader = new CatalogReader(url);
  if (bytes.length > MAX_CATALOG_BYTES) {
    throw new ExtctlError(
      "catalog",
      `the catalog ${url} is ${bytes.length} bytes, more than the ${MAX_CATALOG_BYTES} extctl reads`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (e) {
    throw new ExtctlError("catalog", `the catalog ${url} is not JSON: ${(e as Error).message}`, {
      hint: "check the URL: it should serve a releases.json",
    });
  }
  return reader.catalog(value);
}
