// The declarative extensions file (`extctl apply`): YAML alone, or a Kairos cloud-config with its
// `extensions:` section and `install.extensions` list, read into a checked spec. Every error names
// the line and the field; a key extctl does not handle there is an error, never ignored.
import { pathToFileURL } from "node:url";
import type * as Yaml from "yaml";
import type { Document, LineCounter, Node as YamlNode, Pair, YAMLMap } from "yaml";
import { ExtctlError } from "../../util/errors.js";
import { PROFILES, type ExtensionKind, type Profile } from "../store/layout.js";
import { unsafeNameReason } from "../store/names.js";
import { storeFileName } from "../store/versions.js";
import { canonicalSourceUri, schemeList, sourceFor } from "../sources/source-registry.js";
import { uriScheme } from "../sources/uri.js";
import { catalogSchemeList, catalogSchemeOf } from "../catalog/catalog.js";
import { checkArgv, parseHealthCheck } from "../lifecycle/health-check.js";

interface EntryBase {
  kind: ExtensionKind;
  profiles: Profile[];
  now: boolean;
  /** Where the entry is in the file, for messages. */
  field: string;
  line: number;
}

/** `source: URI` (with `sha256:` for http(s)): one image, installed as the source names it. */
export interface UriEntry extends EntryBase {
  from: "uri";
  /** The URI, with docker:// and container:// written as oci://. */
  source: string;
  sha256?: string;
  name?: undefined;
  requested?: undefined;
}

/** `NAME[@VERSION|@CONSTRAINT]` or `{name, version}`: installed by name from the catalogs
 * (spec/kairos.md section 6) and upgraded when the constraint allows a newer version. */
export interface CatalogEntry extends EntryBase {
  from: "catalog";
  /** The catalog name; the store image is NAME.raw. */
  name: string;
  /** A tag (a pin) or a semver constraint; undefined: the catalog's latest. */
  requested?: string;
  /** `health-check:`: what upgrade --now runs after the merge (an argv, no shell). */
  healthCheck?: string[];
  source?: undefined;
  sha256?: undefined;
}

export type ApplyEntry = UriEntry | CatalogEntry;

export interface ApplySpec {
  /** The file's name as messages give it. */
  file: string;
  policy?: string;
  /** Node paths of certificates to trust. */
  trust: string[];
  /** `catalogs:`: replaces the node's default catalogs for this file's catalog entries. */
  catalogs?: string[];
  entries: ApplyEntry[];
  prune: boolean;
}

/** Where a string or `name:` entry without profiles is enabled: where Kairos links what it
 * installs (spec/kairos.md section 6: `active/` and `passive/`). */
export const DEFAULT_CATALOG_PROFILES: readonly Profile[] = ["active", "passive"];

const TOP_KEYS = ["policy", "trust", "catalogs", "sysext", "confext", "prune"] as const;
/** Under a cloud-config's `extensions:`: ours, plus Kairos's ignore_signatures. */
const CLOUD_CONFIG_KEYS = [...TOP_KEYS, "ignore_signatures"] as const;
/** A mapping in `install.extensions`, as Kairos reads it. */
const INSTALL_ENTRY_KEYS = ["name", "version"] as const;
const ENTRY_KEYS = [
  "source",
  "sha256",
  "name",
  "version",
  "profiles",
  "now",
  "health-check",
] as const;

class SchemaReader {
  constructor(
    private readonly file: string,
    private readonly lines: LineCounter,
    private readonly yaml: typeof Yaml,
  ) {}

  lineOf(node: YamlNode | null | undefined): number {
    const offset = node?.range?.[0];
    return offset === undefined ? 1 : this.lines.linePos(offset).line;
  }

  fail(node: YamlNode | null | undefined, field: string, message: string, hint?: string): never {
    throw new ExtctlError(
      "config",
      `${this.file}:${this.lineOf(node)}: ${field}: ${message}`,
      hint === undefined ? {} : { hint },
    );
  }

  map(node: YamlNode | null | undefined, field: string): YAMLMap {
    if (!this.yaml.isMap(node)) this.fail(node, field, "must be a mapping (key: value lines)");
    return node;
  }

  pairs(
    map: YAMLMap,
    field: string,
    allowed: readonly string[],
  ): Map<string, Pair<YamlNode, YamlNode>> {
    const out = new Map<string, Pair<YamlNode, YamlNode>>();
    for (const pair of map.items as Pair<YamlNode, YamlNode>[]) {
      const key = this.yaml.isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (key === undefined) this.fail(pair.key, field, "keys must be plain words");
      if (!allowed.includes(key))
        this.fail(
          pair.key,
          `${field}.${key}`,
          `unknown field; expected one of ${allowed.join(", ")}`,
        );
      out.set(key, pair);
    }
    return out;
  }

  string(node: YamlNode | null | undefined, field: string): string {
    if (!this.yaml.isScalar(node) || typeof node.value !== "string" || node.value.trim() === "")
      this.fail(node, field, "must be a non-empty string");
    return node.value.trim();
  }

  boolean(node: YamlNode | null | undefined, field: string): boolean {
    if (!this.yaml.isScalar(node) || typeof node.value !== "boolean")
      this.fail(node, field, "must be true or false");
    return node.value;
  }

  list(node: YamlNode | null | undefined, field: string): YamlNode[] {
    if (this.yaml.isScalar(node) && node.value === null) return [];
    if (!this.yaml.isSeq(node)) this.fail(node, field, "must be a list");
    return node.items as YamlNode[];
  }
}

/**
 * `health-check:` as a string (split into words as --health-check is, no shell) or as a list of
 * strings (the argv as it is).
 */
function healthCheckOf(
  yaml: typeof Yaml,
  r: SchemaReader,
  node: YamlNode | null | undefined,
  field: string,
): string[] {
  try {
    if (yaml.isSeq(node))
      return checkArgv(
        r.list(node, field).map((item, i) => {
          if (!yaml.isScalar(item) || typeof item.value !== "string")
            r.fail(item, `${field}[${i}]`, "must be a string");
          return item.value;
        }),
        "the check",
      );
    return parseHealthCheck(r.string(node, field), "the check");
  } catch (e) {
    if (e instanceof ExtctlError && e.code === "usage") r.fail(node, field, e.message, e.hint);
    throw e;
  }
}

/** Checks a source URI's scheme and that its version is pinned (digest or sha256). */
function checkSource(
  r: SchemaReader,
  node: YamlNode,
  field: string,
  source: string,
  sha256: string | undefined,
): void {
  const scheme = uriScheme(source);
  const from = scheme === undefined ? undefined : sourceFor(scheme);
  if (!from) r.fail(node, field, `${JSON.stringify(source)} is not a ${schemeList()} URI`);
  if (from.pin === "digest" && !/@sha256:[0-9a-f]{64}$/.test(source) && sha256 === undefined)
    r.fail(
      node,
      field,
      `an ${from.label} source must be pinned by digest`,
      "append @sha256:DIGEST to the reference (extctl publish prints it), or give sha256:",
    );
  if (from.pin === "sha256" && sha256 === undefined)
    r.fail(
      node,
      field,
      `an ${from.label} source must be pinned with sha256:`,
      "add `sha256: <hex>` to the entry",
    );
}

/** The `name:` and `version:` of a catalog entry written as a mapping, both checked. */
function catalogEntryName(
  yaml: typeof Yaml,
  r: SchemaReader,
  entry: Map<string, Pair<YamlNode, YamlNode>>,
  namePair: Pair<YamlNode, YamlNode>,
  field: string,
): { name: string; requested: string | undefined } {
  const name = r.string(namePair.value, `${field}.name`);
  if (name.includes("@"))
    r.fail(
      namePair.value,
      `${field}.name`,
      `${JSON.stringify(name)} holds "@"`,
      "give the version as `version:`, or write the entry as a string NAME@VERSION",
    );
  checkName(r, namePair.value as YamlNode, `${field}.name`, name);
  const versionPair = entry.get("version");
  let requested: string | undefined;
  if (versionPair) {
    const v = versionPair.value;
    if (yaml.isScalar(v) && typeof v.value === "number")
      r.fail(
        v,
        `${field}.version`,
        "must be a string; quote it (YAML reads 2.10 as the number 2.1)",
      );
    requested = r.string(v, `${field}.version`);
  }
  return { name, requested };
}

/** Checks a catalog extension's name (its store file NAME.raw must be a safe name). */
function checkName(r: SchemaReader, node: YamlNode, field: string, name: string): void {
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(name) || name.startsWith("/"))
    r.fail(
      node,
      field,
      `${JSON.stringify(name)} is a URI or a path, not a catalog name`,
      "give a URI as `source:` (a mapping entry with profiles:)",
    );
  const reason = unsafeNameReason(storeFileName(name));
  if (reason !== undefined)
    r.fail(node, field, `${JSON.stringify(name)} is not a usable extension name: ${reason}`);
}

/** A string entry: NAME, NAME@TAG (a pin) or NAME@CONSTRAINT. */
function parseNameString(
  r: SchemaReader,
  node: YamlNode,
  field: string,
  text: string,
): { name: string; requested?: string } {
  const at = text.indexOf("@");
  const name = (at < 0 ? text : text.slice(0, at)).trim();
  const requested = at < 0 ? undefined : text.slice(at + 1).trim();
  if (name === "") r.fail(node, field, `${JSON.stringify(text)} has no extension name before @`);
  checkName(r, node, field, name);
  if (requested === "") r.fail(node, field, `${JSON.stringify(text)} has an empty version after @`);
  return requested === undefined ? { name } : { name, requested };
}

/** A catalog URL: one of the schemes catalogs are fetched from. */
function checkCatalogUrl(r: SchemaReader, node: YamlNode, field: string, url: string): void {
  if (!catalogSchemeOf(url))
    r.fail(node, field, `${JSON.stringify(url)} is not an ${catalogSchemeList()} URL`);
}

export async function parseApplySpec(text: string, file: string): Promise<ApplySpec> {
  const yaml = await import("yaml");
  const lines = new yaml.LineCounter();
  const doc: Document = yaml.parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const r = new SchemaReader(file, lines, yaml);
  const syntax = doc.errors[0];
  if (syntax) {
    const line = syntax.linePos?.[0]?.line ?? 1;
    throw new ExtctlError(
      "config",
      `${file}:${line}: invalid YAML: ${syntax.message.split("\n")[0]}`,
    );
  }
  const root = doc.contents;
  const rootMap = yaml.isMap(root) ? root : undefined;
  const install = rootMap?.get("install", true) as YamlNode | undefined;
  const installList = yaml.isMap(install)
    ? (install.get("extensions", true) as YamlNode | undefined)
    : undefined;
  // A Kairos cloud-config: `extensions:` and `install.extensions` are ours; the rest (users,
  // the other install: keys, ...) belongs to other tools.
  const cloudConfig =
    rootMap !== undefined && (rootMap.has("extensions") || installList !== undefined);
  let top: YamlNode | null | undefined = root;
  let prefix = "";
  if (cloudConfig) {
    top = rootMap.get("extensions", true);
    prefix = "extensions.";
    if (top === undefined || (yaml.isScalar(top) && top.value === null)) {
      if (installList === undefined) r.fail(top ?? root, "extensions", "is empty");
      top = new yaml.YAMLMap();
    }
  } else if (!yaml.isMap(top) || !TOP_KEYS.some((k) => (top as YAMLMap).has(k))) {
    r.fail(
      top,
      "extensions",
      "the file has no extensions: section and is not an extensions spec",
      "list images under sysext: or confext:, alone or under extensions: of a cloud-config, or under install.extensions",
    );
  }
  const where = prefix.replace(/\.$/, "") || "(top level)";
  const pairs = r.pairs(r.map(top, where), where, cloudConfig ? CLOUD_CONFIG_KEYS : TOP_KEYS);
  const spec: ApplySpec = { file, trust: [], entries: [], prune: false };

  const policy = pairs.get("policy");
  if (policy) {
    spec.policy = r.string(policy.value, `${prefix}policy`);
    const { parseImagePolicy } = await import("../trust/policy.js");
    try {
      parseImagePolicy(spec.policy);
    } catch (e) {
      r.fail(
        policy.value,
        `${prefix}policy`,
        (e as Error).message.replace(/^the image policy /, ""),
      );
    }
  }
  const trust = pairs.get("trust");
  if (trust) {
    r.list(trust.value, `${prefix}trust`).forEach((item, i) => {
      const field = `${prefix}trust[${i}]`;
      const p = r.string(item, field);
      if (!p.startsWith("/")) r.fail(item, field, "must be an absolute path on the node");
      spec.trust.push(p);
    });
  }
  const catalogs = pairs.get("catalogs");
  if (catalogs) {
    spec.catalogs = r.list(catalogs.value, `${prefix}catalogs`).map((item, i) => {
      const field = `${prefix}catalogs[${i}]`;
      const url = r.string(item, field);
      checkCatalogUrl(r, item, field, url);
      return url;
    });
  }
  const prune = pairs.get("prune");
  if (prune) spec.prune = r.boolean(prune.value, `${prefix}prune`);
  const ignoreSignatures = pairs.get("ignore_signatures");
  if (ignoreSignatures && r.boolean(ignoreSignatures.value, `${prefix}ignore_signatures`)) {
    // Kairos relaxes the image policy; extctl's policy `any` is that relaxation.
    if (spec.policy !== undefined && spec.policy !== "any")
      r.fail(
        ignoreSignatures.key,
        `${prefix}ignore_signatures`,
        `true means the policy any, but policy: is ${spec.policy}`,
        "keep one of the two",
      );
    spec.policy = "any";
  }

  for (const kind of ["sysext", "confext"] as const) {
    const list = pairs.get(kind);
    if (!list) continue;
    r.list(list.value, `${prefix}${kind}`).forEach((item, i) => {
      const field = `${prefix}${kind}[${i}]`;
      if (yaml.isScalar(item)) {
        // `- "NAME@CONSTRAINT"`: by name from the catalogs, enabled where Kairos enables.
        if (typeof item.value !== "string" || item.value.trim() === "")
          r.fail(
            item,
            field,
            "must be NAME[@VERSION] (a string) or a mapping with source: or name:",
          );
        const { name, requested } = parseNameString(r, item, field, r.string(item, field));
        spec.entries.push({
          from: "catalog",
          kind,
          name,
          ...(requested === undefined ? {} : { requested }),
          profiles: [...DEFAULT_CATALOG_PROFILES],
          now: false,
          field,
          line: r.lineOf(item),
        });
        return;
      }
      const entry = r.pairs(r.map(item, field), field, ENTRY_KEYS);
      const sourcePair = entry.get("source");
      const namePair = entry.get("name");
      const profilesOf = (fallback?: readonly Profile[]): Profile[] => {
        if (!entry.has("profiles") && fallback) return [...fallback];
        const profilesPair =
          entry.get("profiles") ??
          r.fail(
            item,
            `${field}.profiles`,
            "is missing (list active, passive, recovery or common)",
          );
        const profiles: Profile[] = [];
        r.list(profilesPair.value, `${field}.profiles`).forEach((p, j) => {
          const name = r.string(p, `${field}.profiles[${j}]`);
          if (!(PROFILES as readonly string[]).includes(name))
            r.fail(
              p,
              `${field}.profiles[${j}]`,
              `"${name}" is not a profile; use ${PROFILES.join(", ")}`,
            );
          if (!profiles.includes(name as Profile)) profiles.push(name as Profile);
        });
        return profiles;
      };
      const nowPair = entry.get("now");
      const now = nowPair ? r.boolean(nowPair.value, `${field}.now`) : false;
      if (namePair) {
        if (sourcePair)
          r.fail(
            sourcePair.key,
            `${field}.source`,
            "an entry has either name: (from the catalogs) or source: (a URI), not both",
          );
        const shaPair = entry.get("sha256");
        if (shaPair)
          r.fail(
            shaPair.key,
            `${field}.sha256`,
            "only a source: entry takes sha256:; a catalog pins its images by digest",
          );
        const { name, requested } = catalogEntryName(yaml, r, entry, namePair, field);
        const checkPair = entry.get("health-check");
        const healthCheck = checkPair
          ? healthCheckOf(yaml, r, checkPair.value, `${field}.health-check`)
          : undefined;
        spec.entries.push({
          from: "catalog",
          kind,
          name,
          ...(requested === undefined ? {} : { requested }),
          ...(healthCheck ? { healthCheck } : {}),
          profiles: profilesOf(DEFAULT_CATALOG_PROFILES),
          now,
          field,
          line: r.lineOf(item),
        });
        return;
      }
      const checkPair = entry.get("health-check");
      if (checkPair)
        r.fail(
          checkPair.key,
          `${field}.health-check`,
          "only a name: entry takes health-check:; upgrade runs it, and a source: URI is never upgraded",
        );
      const uriPair =
        sourcePair ??
        r.fail(
          item,
          `${field}.source`,
          "is missing (give source: URI, or name: for an extension from the catalogs)",
        );
      const versionPair = entry.get("version");
      if (versionPair)
        r.fail(
          versionPair.key,
          `${field}.version`,
          "only a name: entry takes version:; a source: URI carries its own version",
        );
      const source = canonicalSourceUri(r.string(uriPair.value, `${field}.source`));
      let sha256: string | undefined;
      const shaPair = entry.get("sha256");
      if (shaPair) {
        sha256 = r.string(shaPair.value, `${field}.sha256`).toLowerCase();
        if (!/^[0-9a-f]{64}$/.test(sha256))
          r.fail(shaPair.value, `${field}.sha256`, "must be 64 hex digits");
      }
      checkSource(r, uriPair.value as YamlNode, `${field}.source`, source, sha256);
      spec.entries.push({
        from: "uri",
        kind,
        source,
        ...(sha256 === undefined ? {} : { sha256 }),
        profiles: profilesOf(),
        now,
        field,
        line: r.lineOf(item),
      });
    });
  }
  if (installList !== undefined) readInstallExtensions(r, yaml, installList, spec);
  return spec;
}

/**
 * Kairos's `install.extensions`: sysexts installed and enabled where Kairos links them at
 * install (active and passive). An entry is NAME, NAME@VERSION|CONSTRAINT or {name, version}
 * from the catalogs, or a URI or absolute path, which carries no version: it is installed once
 * and kept (apply's state remembers the source), as Kairos installs it once.
 */
function readInstallExtensions(
  r: SchemaReader,
  yaml: typeof Yaml,
  node: YamlNode,
  spec: ApplySpec,
): void {
  r.list(node, "install.extensions").forEach((item, i) => {
    const field = `install.extensions[${i}]`;
    const base = {
      kind: "sysext" as const,
      profiles: [...DEFAULT_CATALOG_PROFILES],
      now: false,
      field,
      line: r.lineOf(item),
    };
    if (yaml.isScalar(item)) {
      const text = r.string(item, field);
      if (text.startsWith("/") || /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(text)) {
        const source = canonicalSourceUri(text.startsWith("/") ? pathToFileURL(text).href : text);
        const scheme = uriScheme(source);
        if (scheme === undefined || !sourceFor(scheme))
          r.fail(
            item,
            field,
            `${JSON.stringify(text)} is not a ${schemeList()} URI or an absolute path`,
          );
        spec.entries.push({ from: "uri", source, ...base });
        return;
      }
      const { name, requested } = parseNameString(r, item, field, text);
      spec.entries.push({
        from: "catalog",
        name,
        ...(requested === undefined ? {} : { requested }),
        ...base,
      });
      return;
    }
    const entry = r.pairs(r.map(item, field), field, INSTALL_ENTRY_KEYS);
    const namePair =
      entry.get("name") ?? r.fail(item, `${field}.name`, "is missing (the extension's name)");
    const { name, requested } = catalogEntryName(yaml, r, entry, namePair, field);
    spec.entries.push({
      from: "catalog",
      name,
      ...(requested === undefined ? {} : { requested }),
      ...base,
    });
  });
}
