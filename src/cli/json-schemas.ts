// The JSON documents the data commands print, as JSON Schema (draft 2020-12). They are the one
// description of each document's keys: printJsonAs() fills every key a schema names that the
// result leaves out with null (so a reader sees a key as unknown rather than missing),
// `npm run schemas` writes them to docs/json/, and the tests validate real output against them.

export type JsonSchema = { [key: string]: unknown };

const string: JsonSchema = { type: "string" };
const integer: JsonSchema = { type: "integer" };
const boolean: JsonSchema = { type: "boolean" };
const strings: JsonSchema = { type: "array", items: string };

function oneOf(...values: string[]): JsonSchema {
  return { type: "string", enum: values };
}

function array(items: JsonSchema): JsonSchema {
  return { type: "array", items };
}

/** A string-to-string map (release files, xattrs). */
const stringMap: JsonSchema = { type: "object", additionalProperties: string };

/** The same schema that also allows null: the key is always there, its value may be unknown. */
function orNull(schema: JsonSchema): JsonSchema {
  const type = schema["type"];
  const types = Array.isArray(type) ? [...(type as string[])] : [type as string];
  const out: JsonSchema = { ...schema, type: types.includes("null") ? types : [...types, "null"] };
  if (Array.isArray(schema["enum"])) out["enum"] = [...(schema["enum"] as unknown[]), null];
  return out;
}

/**
 * An object whose keys are all required and no others allowed; the keys in `nullable` may be
 * null (the result leaves them out when unknown or not asked for).
 */
function object(
  properties: Record<string, JsonSchema>,
  nullable: readonly string[] = [],
  description?: string,
): JsonSchema {
  for (const key of nullable)
    if (!(key in properties)) throw new Error(`nullable key ${key} is not a property`);
  return {
    type: "object",
    ...(description ? { description } : {}),
    properties: Object.fromEntries(
      Object.entries(properties).map(([k, v]) => [k, nullable.includes(k) ? orNull(v) : v]),
    ),
    required: Object.keys(properties),
    additionalProperties: false,
  };
}

const kind = oneOf("sysext", "confext");
const profile = oneOf("active", "passive", "recovery", "common");

const list = object(
  {
    kind,
    profile,
    images: array(
      object(
        {
          name: string,
          path: string,
          present: boolean,
          profiles: array(profile),
          linked: boolean,
          merged: boolean,
          version: string,
          format: string,
          signed: boolean,
          compatible: boolean,
          reason: string,
          corrupted: boolean,
          trust: object({ outcome: string, trusted: boolean, signer: string, message: string }, [
            "signer",
          ]),
        },
        ["version", "format", "signed", "compatible", "reason", "corrupted", "trust"],
      ),
    ),
    others: array(
      object(
        {
          name: string,
          path: string,
          type: oneOf("directory", "versioned"),
          picked: object({ file: string, version: string }),
          version: string,
          compatible: boolean,
          reason: string,
          merged: boolean,
        },
        ["picked", "version", "reason"],
      ),
    ),
  },
  ["profile", "others"],
  "extctl sysext|confext list --json: the images in the store, or those enabled in one profile (profile).",
);

const status = object(
  {
    boot: object({
      states: array(oneOf("active", "passive", "recovery", "autoreset", "livecd", "unknown")),
      profiles: array(profile),
      uki: boolean,
    }),
    policy: object({ name: string, text: string, source: string }),
    kinds: array(
      object({
        kind,
        store: string,
        merged: array(object({ hierarchy: string, extensions: strings, since: string }, ["since"])),
        enabled: object({ active: strings, passive: strings, recovery: strings, common: strings }),
        linked: strings,
        mismatches: array(
          object({
            name: string,
            problem: oneOf(
              "linked-not-merged",
              "merged-not-linked",
              "enabled-not-linked",
              "dangling-link",
              "verity-corrupted",
            ),
            detail: string,
          }),
        ),
      }),
    ),
  },
  [],
  "extctl status --json: the boot profile, the image policy, and per kind what is merged, enabled, linked and wrong.",
);

const versions = object(
  {
    name: string,
    image: string,
    requested: string,
    pinned: boolean,
    current: string,
    profiles: array(profile),
    linkedInRuntime: boolean,
    installed: array(
      object(
        {
          version: string,
          reference: string,
          catalog: string,
          installedAt: string,
          current: boolean,
          previous: boolean,
          merged: boolean,
          pending: boolean,
          triesLeft: integer,
          blessed: boolean,
        },
        ["catalog", "triesLeft"],
      ),
    ),
    offered: array(
      object(
        {
          version: string,
          reference: string,
          catalog: string,
          rollout: object({ percent: { type: "number" } }),
          installed: boolean,
        },
        ["reference", "rollout"],
      ),
    ),
    catalogError: string,
    pending: object({
      version: string,
      previous: string,
      triesLeft: integer,
      tries: integer,
      since: string,
    }),
    blessed: string,
    bootFallbacks: array(object({ at: string, from: string, to: string, reason: string })),
    healthCheck: strings,
  },
  ["requested", "current", "offered", "catalogError", "pending", "blessed", "healthCheck"],
  "extctl sysext|confext versions NAME --json: installed versions and what the catalogs offer (offered is null when they were not read).",
);

const upgrade = object(
  {
    kind,
    items: array(
      object(
        {
          name: string,
          from: string,
          to: string,
          action: oneOf(
            "up-to-date",
            "would-upgrade",
            "upgraded",
            "prefetched",
            "skipped",
            "failed",
          ),
          reason: string,
          reference: string,
          merged: boolean,
          pruned: strings,
          unreachable: boolean,
          healthCheck: object(
            {
              command: strings,
              passed: boolean,
              exitCode: integer,
              signal: string,
              timedOut: boolean,
              summary: string,
            },
            ["exitCode", "signal", "timedOut"],
          ),
        },
        ["from", "to", "reference", "merged", "pruned", "unreachable", "healthCheck"],
      ),
    ),
    exitCode: { type: "integer", enum: [0, 1, 3, 75] },
  },
  [],
  "extctl sysext|confext upgrade --json: one item per extension installed by name, and the exit code.",
);

const inspect = object(
  {
    path: string,
    size: integer,
    kind: oneOf("ddi", "single-partition", "bare-fs"),
    format: string,
    architecture: string,
    hostArchitecture: string,
    designator: oneOf("root", "usr"),
    ambiguities: strings,
    requiresSystemd: object({ version: integer, reason: string }),
    sectorSize: integer,
    diskGuid: string,
    partitions: array(
      object(
        {
          index: integer,
          type: string,
          typeGuid: string,
          label: string,
          uuid: string,
          offset: integer,
          size: integer,
          flags: strings,
          role: oneOf("data", "verity", "signature"),
        },
        ["role"],
      ),
    ),
    warnings: strings,
    filesystem: object({ type: string, compression: string, blockSize: integer }),
    extensionKind: kind,
    names: object({ systemd252: string, systemd255: string }),
    release: object({ path: string, match: oneOf("exact", "fallback"), fields: stringMap }),
    releaseProblem: string,
    verity: object(
      {
        version: integer,
        hashType: integer,
        uuid: string,
        hashAlgorithm: string,
        dataBlockSize: integer,
        hashBlockSize: integer,
        dataBlocks: integer,
        salt: string,
        rootHash: string,
        rootHashSource: string,
        source: string,
      },
      [
        "version",
        "hashType",
        "uuid",
        "hashAlgorithm",
        "dataBlockSize",
        "hashBlockSize",
        "dataBlocks",
        "salt",
        "rootHash",
        "rootHashSource",
      ],
    ),
    signature: object(
      {
        source: string,
        rootHash: string,
        certificateFingerprint: string,
        signer: object({ subject: string, issuer: string, fingerprint: string, serial: string }),
        status: string,
        trust: string,
      },
      ["rootHash", "certificateFingerprint", "signer", "trust"],
    ),
    tree: object({
      entries: integer,
      files: integer,
      directories: integer,
      symlinks: integer,
      other: integer,
      totalFileSize: integer,
      topDirectories: array(object({ path: string, entries: integer, size: integer })),
    }),
    files: array(
      object(
        {
          path: string,
          type: oneOf("file", "dir", "symlink", "chardev", "blockdev", "fifo", "socket"),
          mode: string,
          uid: integer,
          gid: integer,
          size: integer,
          target: string,
          xattrs: stringMap,
        },
        ["target", "xattrs"],
      ),
    ),
    bytesRead: integer,
  },
  [
    "architecture",
    "hostArchitecture",
    "designator",
    "requiresSystemd",
    "sectorSize",
    "diskGuid",
    "release",
    "releaseProblem",
    "verity",
    "signature",
    "tree",
    "files",
  ],
  "extctl inspect IMAGE --json: what the image is, read without mounting it (tree and files only with --tree / --files).",
);

const check = object(
  {
    name: string,
    kind,
    systemd: integer,
    compatible: boolean,
    reason: string,
    rules: array(
      object({ rule: string, status: oneOf("pass", "fail", "skip", "warn"), reason: string }),
    ),
    path: string,
    systemdVersion: integer,
    systemdVersionSource: oneOf("option", "root", "host", "default"),
    hostId: string,
    hostVersionId: string,
    policy: object({ text: string, source: string }),
    linkName: string,
    entry: object(
      {
        type: oneOf("directory", "versioned"),
        picked: object({ file: string, version: string, path: string }),
      },
      ["picked"],
    ),
  },
  ["reason", "hostId", "hostVersionId", "policy", "entry"],
  "extctl check IMAGE --json: every rule of systemd's check, in its order, and the verdict.",
);

/** The documents, by the name of their file in docs/json/ (NAME.schema.json). */
export const JSON_SCHEMAS = { list, status, versions, upgrade, inspect, check } as const;

export type JsonDocument = keyof typeof JSON_SCHEMAS;

/** The schema as docs/json/NAME.schema.json holds it. */
export function schemaDocument(name: JsonDocument): JsonSchema {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: `urn:extctl:json:${name}`,
    title: `extctl ${name}`,
    ...JSON_SCHEMAS[name],
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * `value` with every key `schema` names present: one the value leaves out (undefined) becomes
 * null, recursively through objects and arrays. Keys the schema does not name are kept as they
 * are (the tests catch them against additionalProperties: false).
 */
export function withEveryKey(value: unknown, schema: JsonSchema): unknown {
  if (Array.isArray(value)) {
    const items = schema["items"] as JsonSchema | undefined;
    return items ? value.map((v) => withEveryKey(v, items)) : value;
  }
  if (!isPlainObject(value)) return value;
  const properties = schema["properties"] as Record<string, JsonSchema> | undefined;
  const extra = schema["additionalProperties"];
  const out: Record<string, unknown> = {};
  // The schema's order first (the documented order), then anything else the value carries.
  for (const [key, sub] of Object.entries(properties ?? {}))
    out[key] = value[key] === undefined ? null : withEveryKey(value[key], sub);
  for (const [key, v] of Object.entries(value)) {
    if (key in out || v === undefined) continue;
    out[key] = isPlainObject(extra) ? withEveryKey(v, extra) : v;
  }
  return out;
}
