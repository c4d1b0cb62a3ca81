// registries.conf as skopeo and podman read it (containers-registries.conf(5)): which [[registry]]
// an image reference falls under, whether it is blocked or plain http, and where a pull may go.
import { readdir } from "node:fs/promises";
import type { Context } from "../../../util/context.js";
import { READ_CAPS, readBoundedOptional, readInRoot } from "../../../util/bounded-read.js";
import { ExtctlError, errnoCode, fsError } from "../../../util/errors.js";
import {
  isTomlTable,
  parseToml,
  type TomlDocument,
  type TomlTable,
  type TomlValue,
} from "../../../util/toml.js";
import { formatReference, parseReference, type Reference } from "../../oci/reference.js";
import { canonicalRegistryHost, canonicalRegistryPath } from "../../oci/registry-host.js";

export const REGISTRIES_CONF = "/etc/containers/registries.conf";
export const REGISTRIES_CONF_DIR = "/etc/containers/registries.conf.d";
export const REGISTRIES_CONF_ENV = "CONTAINERS_REGISTRIES_CONF";

/** Which references a mirror serves: `pull-from-mirror` of the man page. */
export type MirrorPulls = "all" | "digest-only" | "tag-only";

export interface RegistryMirror {
  location: string;
  insecure: boolean;
  pulls: MirrorPulls;
  /** "FILE:LINE" of its [[registry.mirror]] table, for messages. */
  where: string;
}

export interface RegistryEntry {
  /** What the reference must start with (a host, host/path, or "*.domain"). */
  prefix: string;
  /** Where the prefix really lives; "" for a wildcard prefix, which rewrites nothing. */
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrors: RegistryMirror[];
  where: string;
}

export interface RegistriesConf {
  /** The files read, in order (host paths). */
  files: string[];
  entries: RegistryEntry[];
  /** Parsed for completeness; extctl never searches for unqualified names. */
  unqualifiedSearchRegistries: string[];
}

export const EMPTY_REGISTRIES_CONF: RegistriesConf = {
  files: [],
  entries: [],
  unqualifiedSearchRegistries: [],
};

interface FileConf {
  entries: RegistryEntry[];
  unqualifiedSearchRegistries?: string[];
}

function confError(where: string, message: string): ExtctlError {
  return new ExtctlError("config", `${where}: ${message}`, {
    hint: "see containers-registries.conf(5); fix or remove that entry",
  });
}

class FileReader {
  constructor(
    readonly file: string,
    readonly doc: TomlDocument,
  ) {}

  where(table: TomlTable, key?: string): string {
    const line =
      (key !== undefined ? this.doc.keyLine(table, key) : undefined) ?? this.doc.lineOf(table);
    return line === undefined ? this.file : `${this.file}:${line}`;
  }

  string(table: TomlTable, key: string): string | undefined {
    const v = own(table, key);
    if (v === undefined) return undefined;
    if (typeof v !== "string") throw confError(this.where(table, key), `${key} must be a string`);
    return v;
  }

  bool(table: TomlTable, key: string): boolean | undefined {
    const v = own(table, key);
    if (v === undefined) return undefined;
    if (typeof v !== "boolean")
      throw confError(this.where(table, key), `${key} must be true or false`);
    return v;
  }

  strings(table: TomlTable, key: string): string[] | undefined {
    const v = own(table, key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
      throw confError(this.where(table, key), `${key} must be an array of strings`);
    }
    return v as string[];
  }

  tables(table: TomlTable, key: string): TomlTable[] {
    const v = own(table, key);
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((t) => !isTable(t))) {
      throw confError(this.where(table, key), `${key} must be an array of tables ([[${key}]])`);
    }
    return v as TomlTable[];
  }

  table(table: TomlTable, key: string): TomlTable | undefined {
    const v = own(table, key);
    if (v === undefined) return undefined;
    if (!isTable(v)) throw confError(this.where(table, key), `${key} must be a table`);
    return v;
  }
}

function own(table: TomlTable, key: string): TomlValue | undefined {
  return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

function isTable(v: TomlValue | undefined): v is TomlTable {
  return isTomlTable(v);
}

/**
 * A prefix or location as the man page writes them (no scheme, no empty path component), in the
 * canonical form references have (registry-host.ts): `LOCALHOST:05001` is `localhost:5001`,
 * `127.1` is `127.0.0.1`, so that no other spelling of a blocked registry gets past it.
 */
function checkName(where: string, key: string, value: string, wildcardOk: boolean): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw confError(where, `${key} = "${value}" has a scheme; write it as host[:port][/path]`);
  }
  if (value.startsWith("*.")) {
    if (!wildcardOk) throw confError(where, `${key} cannot be a wildcard ("${value}")`);
    if (!/^\*\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*$/.test(value)) {
      throw confError(
        where,
        `the wildcard prefix "${value}" must be *.DOMAIN, with no port or path`,
      );
    }
    return value.toLowerCase();
  }
  if (value.includes("*")) {
    throw confError(where, `${key} = "${value}": a wildcard may only start a prefix, as *.DOMAIN`);
  }
  if (/\s/.test(value) || value.split("/").some((p) => p === "")) {
    throw confError(where, `${key} = "${value}" is not a host[:port][/path]`);
  }
  const canonical = canonicalRegistryPath(value);
  if (canonical === undefined) {
    const host = value.split("/")[0] as string;
    throw confError(
      where,
      `${key} = "${value}": the host "${host}" ${canonicalRegistryHost(host).problem ?? "is not valid"}`,
    );
  }
  return canonical;
}

function parseMirror(r: FileReader, t: TomlTable): RegistryMirror {
  const where = r.where(t);
  const location = r.string(t, "location");
  if (location === undefined || location === "") {
    throw confError(where, "a [[registry.mirror]] needs a location");
  }
  const canonical = checkName(r.where(t, "location"), "location", location, false);
  const pulls = r.string(t, "pull-from-mirror") ?? "all";
  if (pulls !== "all" && pulls !== "digest-only" && pulls !== "tag-only") {
    throw confError(
      r.where(t, "pull-from-mirror"),
      `pull-from-mirror = "${pulls}": it is "all", "digest-only" or "tag-only"`,
    );
  }
  return { location: canonical, insecure: r.bool(t, "insecure") ?? false, pulls, where };
}

function parseRegistry(r: FileReader, t: TomlTable): RegistryEntry {
  const where = r.where(t);
  let prefix = r.string(t, "prefix");
  let location = r.string(t, "location") ?? "";
  if (prefix !== undefined && prefix !== "")
    prefix = checkName(r.where(t, "prefix"), "prefix", prefix, true);
  if (location !== "") location = checkName(r.where(t, "location"), "location", location, false);
  if (prefix === undefined || prefix === "") {
    if (location === "") throw confError(where, "a [[registry]] needs a prefix or a location");
    prefix = location;
  }
  if (prefix.startsWith("*.") && location !== "") {
    throw confError(where, `the wildcard prefix "${prefix}" cannot have a location to rewrite to`);
  }
  const mirrors = r.tables(t, "mirror").map((m) => parseMirror(r, m));
  // The older switch: true makes every mirror of the entry digest-only.
  if (r.bool(t, "mirror-by-digest-only") === true) {
    for (const m of mirrors) m.pulls = "digest-only";
  }
  return {
    prefix,
    location,
    insecure: r.bool(t, "insecure") ?? false,
    blocked: r.bool(t, "blocked") ?? false,
    mirrors,
    where,
  };
}

/** Version 1: [registries.insecure] and [registries.block] lists of hosts. */
function parseVersion1(r: FileReader, registries: TomlTable): RegistryEntry[] {
  const byHost = new Map<string, RegistryEntry>();
  const add = (section: string, flag: "insecure" | "blocked") => {
    const table = r.table(registries, section);
    if (!table) return;
    for (const written of r.strings(table, "registries") ?? []) {
      const where = r.where(table, "registries");
      const host = checkName(where, `registries.${section}`, written, false);
      const entry = byHost.get(host) ?? {
        prefix: host,
        location: host,
        insecure: false,
        blocked: false,
        mirrors: [],
        where,
      };
      entry[flag] = true;
      byHost.set(host, entry);
    }
  };
  add("insecure", "insecure");
  add("block", "blocked");
  return [...byHost.values()];
}

/** Parses one registries.conf file; `dropIn` files must use version 2, as the man page says. */
export function parseRegistriesConf(
  text: string,
  file: string,
  options: { dropIn?: boolean } = {},
): FileConf {
  const r = new FileReader(file, parseToml(text, file));
  const root = r.doc.root;
  const v1 = r.table(root, "registries");
  const v2 = r.tables(root, "registry");
  if (v1 && (v2.length > 0 || own(root, "unqualified-search-registries") !== undefined)) {
    throw confError(r.where(v1), "mixes the version 1 [registries] tables with version 2 settings");
  }
  if (v1 && options.dropIn) {
    throw confError(r.where(v1), "a drop-in file must use the version 2 format ([[registry]])");
  }
  const entries = v1 ? parseVersion1(r, v1) : v2.map((t) => parseRegistry(r, t));
  const seen = new Map<string, RegistryEntry>();
  for (const e of entries) {
    const first = seen.get(e.prefix);
    if (first && !v1) {
      throw confError(e.where, `the prefix "${e.prefix}" is already configured at ${first.where}`);
    }
    seen.set(e.prefix, e);
  }
  const out: FileConf = { entries };
  const search = v1
    ? r.strings(r.table(v1, "search") ?? {}, "registries")
    : r.strings(root, "unqualified-search-registries");
  if (search !== undefined) out.unqualifiedSearchRegistries = search;
  return out;
}

/** Later files override earlier ones: an entry with the same prefix replaces the earlier entry. */
export function mergeRegistriesConf(
  files: readonly { file: string; conf: FileConf }[],
): RegistriesConf {
  const entries = new Map<string, RegistryEntry>();
  let search: string[] = [];
  for (const { conf } of files) {
    for (const e of conf.entries) {
      entries.delete(e.prefix);
      entries.set(e.prefix, e);
    }
    if (conf.unqualifiedSearchRegistries !== undefined) search = conf.unqualifiedSearchRegistries;
  }
  return {
    files: files.map((f) => f.file),
    entries: [...entries.values()],
    unqualifiedSearchRegistries: search,
  };
}

/**
 * Reads $CONTAINERS_REGISTRIES_CONF (a host path, alone) or, under the root,
 * /etc/containers/registries.conf and then registries.conf.d/*.conf in lexical order.
 * No files: an empty configuration.
 */
export async function loadRegistriesConf(
  ctx: Pick<Context, "root" | "env">,
): Promise<RegistriesConf> {
  const read: { file: string; conf: FileConf }[] = [];
  const options = { cap: READ_CAPS.config, what: "registries.conf" };
  const override = ctx.env[REGISTRIES_CONF_ENV];
  if (override !== undefined && override !== "") {
    const bytes = await readBoundedOptional(override, options);
    if (bytes === undefined) {
      throw new ExtctlError(
        "config",
        `${REGISTRIES_CONF_ENV} names ${override}, which does not exist`,
        { hint: `unset ${REGISTRIES_CONF_ENV} to read ${REGISTRIES_CONF}, or point it at a file` },
      );
    }
    read.push({ file: override, conf: parseRegistriesConf(bytes.toString("utf8"), override) });
    return mergeRegistriesConf(read);
  }
  const main = await readInRoot(ctx.root, REGISTRIES_CONF, options);
  if (main !== undefined) {
    const file = ctx.root.path(REGISTRIES_CONF);
    read.push({ file, conf: parseRegistriesConf(main.toString("utf8"), file) });
  }
  const dir = await ctx.root.readPath(REGISTRIES_CONF_DIR);
  let names: string[] = [];
  try {
    const dirents = await readdir(dir, { withFileTypes: true });
    names = dirents
      .filter((d) => d.name.endsWith(".conf") && !d.isDirectory())
      .map((d) => d.name)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  } catch (e) {
    const code = errnoCode(e);
    if (code !== "ENOENT" && code !== "ENOTDIR") throw fsError(e, `read ${dir}`);
  }
  for (const name of names) {
    const nodePath = `${REGISTRIES_CONF_DIR}/${name}`;
    const bytes = await readInRoot(ctx.root, nodePath, options);
    // A dangling link, or a directory behind a link, is skipped as the man page skips directories.
    if (bytes === undefined) continue;
    const file = ctx.root.path(nodePath);
    read.push({ file, conf: parseRegistriesConf(bytes.toString("utf8"), file, { dropIn: true }) });
  }
  return mergeRegistriesConf(read);
}

/** The name a prefix is matched against: host/repository[:tag][@digest]. */
function referenceName(ref: Reference): string {
  return formatReference(ref, { scheme: false });
}

/** How much of `name` the prefix covers, or -1; a match ends at a component boundary. */
export function prefixMatch(name: string, prefix: string): number {
  const slash = name.indexOf("/");
  const host = slash < 0 ? name : name.slice(0, slash);
  if (prefix.startsWith("*.")) {
    const hostname = host.replace(/:\d+$/, "");
    const suffix = prefix.slice(1);
    return hostname.length > suffix.length && hostname.endsWith(suffix) ? host.length : -1;
  }
  if (!name.startsWith(prefix)) return -1;
  if (name.length === prefix.length) return prefix.length;
  const next = name[prefix.length] as string;
  // After a bare host only a path may follow ("localhost" must not match "localhost:5000");
  // after a tag only a digest; after a repository path, a deeper path, a tag or a digest.
  if (!prefix.includes("/")) return next === "/" ? prefix.length : -1;
  const lastPart = prefix.slice(prefix.lastIndexOf("/") + 1);
  if (lastPart.includes(":")) return next === "@" ? prefix.length : -1;
  return next === "/" || next === ":" || next === "@" ? prefix.length : -1;
}

export interface RegistryMatch {
  entry: RegistryEntry;
  /** Characters of the reference name the prefix covers. */
  length: number;
}

/** The one [[registry]] that governs `ref`: the longest matching prefix (a wildcard loses ties). */
export function findRegistry(conf: RegistriesConf, ref: Reference): RegistryMatch | undefined {
  const name = referenceName(ref);
  let best: RegistryMatch | undefined;
  for (const entry of conf.entries) {
    const length = prefixMatch(name, entry.prefix);
    if (length < 0) continue;
    const better =
      !best ||
      length > best.length ||
      (length === best.length &&
        best.entry.prefix.startsWith("*.") &&
        !entry.prefix.startsWith("*."));
    if (better) best = { entry, length };
  }
  return best;
}

/** One place a pull may be served from. */
export interface PullSource {
  ref: Reference;
  /** Plain http, as the entry (or the mirror) says. */
  insecure: boolean;
  mirror: boolean;
  /** The registries.conf line it comes from; undefined when no entry matched. */
  where?: string;
}

function rewrite(ref: Reference, match: RegistryMatch, location: string, where: string): Reference {
  const name = referenceName(ref);
  const rewritten = location + name.slice(match.length);
  try {
    return parseReference(rewritten);
  } catch (e) {
    throw new ExtctlError(
      "config",
      `${where}: ${formatReference(ref)} rewritten by the prefix "${match.entry.prefix}" is "${rewritten}", which is not a valid reference`,
      { cause: e, hint: "check the prefix and location of that entry" },
    );
  }
}

export function blockedError(ref: Reference, entry: RegistryEntry): ExtctlError {
  return new ExtctlError(
    "policy",
    `${formatReference(ref)} is blocked by ${entry.where} (prefix "${entry.prefix}", blocked = true)`,
    { hint: "pull it from another registry, or remove blocked = true there" },
  );
}

/**
 * Where a pull of `ref` goes, in order: the entry's mirrors that serve this kind of reference
 * (by tag or by digest), then the origin (its `location`, or the reference itself). A blocked
 * entry is an error. Without a matching entry, just the reference.
 */
export function pullSources(conf: RegistriesConf, ref: Reference): PullSource[] {
  const match = findRegistry(conf, ref);
  if (!match) return [{ ref, insecure: false, mirror: false }];
  const { entry } = match;
  if (entry.blocked) throw blockedError(ref, entry);
  const byDigest = ref.digest !== undefined;
  const sources: PullSource[] = [];
  for (const m of entry.mirrors) {
    if (m.pulls === "digest-only" && !byDigest) continue;
    if (m.pulls === "tag-only" && byDigest) continue;
    sources.push({
      ref: rewrite(ref, match, m.location, m.where),
      insecure: m.insecure,
      mirror: true,
      where: m.where,
    });
  }
  const origin = entry.location === "" ? ref : rewrite(ref, match, entry.location, entry.where);
  sources.push({ ref: origin, insecure: entry.insecure, mirror: false, where: entry.where });
  return sources;
}

/**
 * Hosts registries.conf marks insecure as a whole (a prefix or location that is a bare host, and
 * such mirrors): a redirect or token realm there may be plain http, as for --insecure-registry.
 */
export function insecureHosts(conf: RegistriesConf): string[] {
  const hosts = new Set<string>();
  for (const e of conf.entries) {
    if (e.insecure) {
      if (!e.prefix.includes("/") && !e.prefix.startsWith("*.")) hosts.add(e.prefix);
      if (e.location !== "" && !e.location.includes("/")) hosts.add(e.location);
    }
    for (const m of e.mirrors) if (m.insecure && !m.location.includes("/")) hosts.add(m.location);
  }
  return [...hosts];
}
