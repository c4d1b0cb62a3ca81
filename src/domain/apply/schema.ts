// The declarative extensions file (`extctl apply`): YAML alone or under `extensions:` of a Kairos
// cloud-config, read into a checked spec. Every error names the line and the field.
import type * as Yaml from "yaml";
import type { Document, LineCounter, Node as YamlNode, Pair, YAMLMap } from "yaml";
import { ExtctlError } from "../../util/errors.js";
import { PROFILES, type ExtensionKind, type Profile } from "../store/layout.js";

export interface ApplyEntry {
  kind: ExtensionKind;
  source: string;
  sha256?: string;
  profiles: Profile[];
  now: boolean;
  /** Where the entry is in the file, for messages. */
  field: string;
  line: number;
}

export interface ApplySpec {
  policy?: string;
  /** Node paths of certificates to trust. */
  trust: string[];
  entries: ApplyEntry[];
  prune: boolean;
}

const TOP_KEYS = ["policy", "trust", "sysext", "confext", "prune"] as const;
const ENTRY_KEYS = ["source", "sha256", "profiles", "now"] as const;

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

/** Checks a source URI's scheme and that its version is pinned (digest or sha256). */
function checkSource(
  r: SchemaReader,
  node: YamlNode,
  field: string,
  source: string,
  sha256: string | undefined,
): void {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(source);
  const scheme = m?.[1]?.toLowerCase();
  if (!scheme || !["file", "http", "https", "oci"].includes(scheme))
    r.fail(node, field, `${JSON.stringify(source)} is not a file:, http:, https: or oci: URI`);
  if (scheme === "oci" && !/@sha256:[0-9a-f]{64}$/.test(source) && sha256 === undefined)
    r.fail(
      node,
      field,
      "an oci: source must be pinned by digest",
      "append @sha256:DIGEST to the reference (extctl publish prints it), or give sha256:",
    );
  if ((scheme === "http" || scheme === "https") && sha256 === undefined)
    r.fail(
      node,
      field,
      "an http(s): source must be pinned with sha256:",
      "add `sha256: <hex>` to the entry",
    );
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
  let top = doc.contents as YamlNode | null;
  let prefix = "";
  if (yaml.isMap(top) && top.has("extensions")) {
    // A Kairos cloud-config: only our key matters; the rest belongs to other tools.
    top = top.get("extensions", true) as YamlNode;
    prefix = "extensions.";
    if (top === undefined || (yaml.isScalar(top) && top.value === null))
      r.fail(top, "extensions", "is empty");
  } else if (!yaml.isMap(top) || !TOP_KEYS.some((k) => (top as YAMLMap).has(k))) {
    r.fail(
      top,
      "extensions",
      "the file has no extensions: section and is not an extensions spec",
      "list images under sysext: or confext:, alone or under extensions: of a cloud-config",
    );
  }
  const where = prefix.replace(/\.$/, "") || "(top level)";
  const pairs = r.pairs(r.map(top, where), where, TOP_KEYS);
  const spec: ApplySpec = { trust: [], entries: [], prune: false };

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
  const prune = pairs.get("prune");
  if (prune) spec.prune = r.boolean(prune.value, `${prefix}prune`);

  for (const kind of ["sysext", "confext"] as const) {
    const list = pairs.get(kind);
    if (!list) continue;
    r.list(list.value, `${prefix}${kind}`).forEach((item, i) => {
      const field = `${prefix}${kind}[${i}]`;
      const entry = r.pairs(r.map(item, field), field, ENTRY_KEYS);
      const sourcePair = entry.get("source") ?? r.fail(item, `${field}.source`, "is missing");
      const source = r.string(sourcePair.value, `${field}.source`);
      let sha256: string | undefined;
      const shaPair = entry.get("sha256");
      if (shaPair) {
        sha256 = r.string(shaPair.value, `${field}.sha256`).toLowerCase();
        if (!/^[0-9a-f]{64}$/.test(sha256))
          r.fail(shaPair.value, `${field}.sha256`, "must be 64 hex digits");
      }
      checkSource(r, sourcePair.value as YamlNode, `${field}.source`, source, sha256);
      const profilesPair =
        entry.get("profiles") ??
        r.fail(item, `${field}.profiles`, "is missing (list active, passive, recovery or common)");
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
      const nowPair = entry.get("now");
      spec.entries.push({
        kind,
        source,
        ...(sha256 === undefined ? {} : { sha256 }),
        profiles,
        now: nowPair ? r.boolean(nowPair.value, `${field}.now`) : false,
        field,
        line: r.lineOf(item),
      });
    });
  }
  return spec;
}
