// The one table of image sources: what each handles (URI schemes, the request options it reads,
// how apply pins it) and how to load it; everything that needs the list of schemes reads it here.
import type { FetchRequest, Source } from "./types.js";

/** Request fields a source may read besides the URI, the kind and the store directory. */
export type SourceOption = Exclude<keyof FetchRequest, "uri" | "kind" | "storeDir">;

export interface SourceDescriptor {
  /** URI schemes, lower case, without the colon. */
  readonly schemes: readonly string[];
  /**
   * Other spellings of the first scheme (kairos-sdk's `docker://` and `container://` are
   * `oci://`): canonicalSourceUri rewrites them before anything else reads the URI.
   */
  readonly aliases?: readonly string[];
  /** How messages name these URIs, e.g. "http(s):". */
  readonly label: string;
  /** The only options the source is handed: a source cannot read one it did not declare. */
  readonly options: readonly SourceOption[];
  /**
   * What apply demands so that an entry names one version: a sha256: (a server may serve other
   * bytes tomorrow), or a digest in the URI or a sha256:. Undefined: the URI alone will do.
   */
  readonly pin?: "sha256" | "digest";
  /** Loads the module on first use, so a command that fetches nothing never pays for it. */
  load(): Promise<Source>;
}

export const SOURCES: readonly SourceDescriptor[] = [
  {
    schemes: ["file"],
    label: "file:",
    options: ["name", "mergeName", "sha256", "maxBytes"],
    load: async () => (await import("./file.js")).fileSource,
  },
  {
    schemes: ["http", "https"],
    label: "http(s):",
    options: ["name", "mergeName", "sha256", "caCerts", "timeoutMs", "maxBytes"],
    pin: "sha256",
    load: async () => (await import("./http.js")).httpSource,
  },
  {
    schemes: ["oci"],
    aliases: ["docker", "container"],
    label: "oci:",
    options: [
      "mergeName",
      "sha256",
      "caCerts",
      "platform",
      "creds",
      "insecureRegistries",
      "timeoutMs",
      "maxBytes",
      "replace",
      "noClobber",
    ],
    pin: "digest",
    load: async () => (await import("./oci/index.js")).ociSource,
  },
];

/** Every scheme any source handles, in the table's order. */
export const SCHEMES: readonly string[] = SOURCES.flatMap((s) => s.schemes);

/** The source for a scheme or an alias (lower case, no colon), or undefined when none handles it. */
export function sourceFor(scheme: string): SourceDescriptor | undefined {
  return SOURCES.find((s) => s.schemes.includes(scheme) || s.aliases?.includes(scheme));
}

/**
 * The URI with an alias scheme replaced by the scheme it stands for (`docker://r/x:1` ->
 * `oci://r/x:1`); any other URI as it is.
 */
export function canonicalSourceUri(uri: string): string {
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(uri);
  const scheme = match?.[1]?.toLowerCase();
  if (scheme === undefined) return uri;
  const source = SOURCES.find((s) => s.aliases?.includes(scheme));
  return source ? `${source.schemes[0]}:${uri.slice(scheme.length + 1)}` : uri;
}

/** "file:, http:, https: or oci:": the schemes as a sentence lists them. */
export function schemeList(schemes: readonly string[] = SCHEMES): string {
  const names = schemes.map((s) => `${s}:`);
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}
