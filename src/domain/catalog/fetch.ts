// Reading catalogs from https:, file: and oci: URLs, in order, with their detached signatures
// checked against the node's trust store and a per-URL memory of the newest `generated` seen,
// so a catalog cannot be forged, frozen or rolled back (TUF's threat model) without notice.
import path from "node:path";
import type { Context } from "../../util/context.js";
import { EX_TEMPFAIL, ExtctlError, errnoCode, isTemporary } from "../../util/errors.js";
import { READ_CAPS, readBoundedOptional, readInRoot } from "../../util/bounded-read.js";
import { writeFileInRoot } from "../../util/atomic.js";
import { readOwnedInRoot } from "../../util/owned-state.js";
import type { Root } from "../../util/root.js";
import { filePathOf } from "../sources/uri.js";
import { loadTrustStore, type TrustStore } from "../trust/truststore.js";
import { verifyDetachedSignature, type DetachedSubject } from "../trust/signature.js";
import {
  MAX_CATALOG_BYTES,
  MAX_CATALOG_SIGNATURE_BYTES,
  SIGNATURE_SUFFIX,
  catalogSchemeList,
  catalogSchemeOf,
  parseCatalog,
  type Catalog,
  type CatalogScheme,
} from "./catalog.js";

/** Under the root: one catalog URL a line; `#` starts a comment. */
export const DEFAULT_CATALOGS_FILE = "/etc/extctl/catalogs";
/** Under the root: per catalog URL, the newest `generated` time seen. */
export const CATALOG_STATE_FILE = "/var/lib/kairos/extctl-catalogs.json";
/** A `generated` further ahead of the clock than this is accepted but not remembered. */
const MAX_CLOCK_SKEW_MS = 24 * 60 * 60 * 1000;

export const CATALOG_SIGNATURE: DetachedSubject = {
  name: "catalog",
  hint: "sign the catalog with `extctl catalog sign FILE --key KEY --cert CERT`",
};

export interface CatalogFetchOptions {
  /**
   * Catalog URLs in order (a file: URL here is a host path); empty or undefined: those in
   * DEFAULT_CATALOGS_FILE (where a file: URL is a node path under the root).
   */
  urls?: string[];
  /** Extra CA certificate files (PEM) for https: and registries. */
  caCerts?: string[];
  /** Registry hosts reached over plain http (oci: catalogs). */
  insecureRegistries?: string[];
  /** Registry credentials "USER:PASS" (oci: catalogs). */
  creds?: string;
  timeoutMs?: number;
  /** "signed": a catalog without a valid signature is refused. Default "any". */
  policy?: "any" | "signed";
  /** Extra trusted certificate files or directories (host paths), as --trust. */
  trust?: string[];
  /** Record the newest `generated` seen (default true; false for --dry-run). */
  remember?: boolean;
}

export interface LoadedCatalogs {
  catalogs: Catalog[];
  skipped: { url: string; reason: string }[];
  /** Per loaded catalog: the subject of the certificate that signed it, or undefined. */
  signed: Record<string, string | undefined>;
}

/** What one URL served: the catalog's bytes and its signature, when there is one. */
interface FetchedCatalog {
  bytes: Buffer;
  signature?: Buffer;
  /** Keeps this copy for the next conditional check; called once the catalog is accepted. */
  keep?: () => Promise<void>;
}

/** The catalog URLs listed in ROOT/etc/extctl/catalogs, in order; none when it is absent. */
export async function defaultCatalogUrls(root: Root): Promise<string[]> {
  const bytes = await readInRoot(root, DEFAULT_CATALOGS_FILE, {
    cap: READ_CAPS.config,
    what: "the catalog list",
  });
  if (bytes === undefined) return [];
  return bytes
    .toString("utf8")
    .split("\n")
    .map((line) => line.replace(/(^|\s)#.*$/, "").trim())
    .filter((line) => line !== "");
}

/**
 * https: catalogs, asked conditionally with the validators of the copy kept from the last check
 * (catalog/cache.ts): a server with nothing new answers 304 and the kept copy is read again,
 * through the same checks. The signature is asked for only when the policy needs one: under
 * `any` it could change nothing, and every request counts across a fleet.
 */
async function fetchHttps(
  ctx: Context,
  url: string,
  options: CatalogFetchOptions,
): Promise<FetchedCatalog> {
  const request = {
    ...(options.caCerts ? { caCerts: options.caCerts } : {}),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  };
  // Loaded for https catalogs only: it brings TLS, which a file: catalog does not need.
  const [{ httpGetBytes, httpGetConditional }, cache] = await Promise.all([
    import("../sources/http.js"),
    import("./cache.js"),
  ]);
  const held = await cache.readCachedCatalog(ctx, url);
  const got = await httpGetConditional(
    ctx,
    url,
    { ...request, maxBytes: MAX_CATALOG_BYTES, what: "the catalog" },
    held
      ? {
          ...(held.etag ? { etag: held.etag } : {}),
          ...(held.lastModified ? { lastModified: held.lastModified } : {}),
        }
      : {},
  );
  if (got.status === "absent") {
    throw new ExtctlError("not-found", `${url} answered HTTP 404 Not Found`, {
      hint: "check the catalog URL",
    });
  }
  let fetched: FetchedCatalog;
  if (got.status === "not-modified" && held) {
    ctx.log.debug(`catalog ${url}: not modified since the copy kept in ${cache.CATALOG_CACHE_DIR}`);
    fetched = { bytes: held.bytes };
  } else if (got.status === "ok") {
    const entry = {
      url,
      bytes: got.bytes,
      ...(got.etag === undefined ? {} : { etag: got.etag }),
      ...(got.lastModified === undefined ? {} : { lastModified: got.lastModified }),
    };
    fetched = {
      bytes: got.bytes,
      ...(got.etag === undefined && got.lastModified === undefined
        ? {}
        : { keep: () => cache.writeCachedCatalog(ctx, entry) }),
    };
  } else {
    throw new ExtctlError("download", `${url} answered 304 Not Modified to a plain request`);
  }
  if ((options.policy ?? "any") !== "signed") return fetched;
  const signatureUrl = new URL(url);
  signatureUrl.pathname += SIGNATURE_SUFFIX;
  const signature = await httpGetBytes(ctx, signatureUrl.toString(), {
    ...request,
    maxBytes: MAX_CATALOG_SIGNATURE_BYTES,
    what: "the catalog signature",
    // Object stores (S3, GCS) answer 403 for a key that is not there. Taking it as "unsigned"
    // weakens nothing: under the signed policy a missing signature is refused.
    absent: [403, 404, 410],
  });
  return signature === undefined ? fetched : { ...fetched, signature };
}

/**
 * file: catalogs. A URL from the catalog list under the root names a node path, read inside the
 * root; one the caller gives (--catalog) names a host path, as `install file://` and `--trust`
 * do: it is what the operator points at. Both are read bounded, regular files only.
 */
async function fetchFile(ctx: Context, url: string, underRoot: boolean): Promise<FetchedCatalog> {
  const named = filePathOf(url);
  const file = underRoot ? path.posix.resolve("/", named) : path.resolve(named);
  const read = (target: string, cap: number, what: string) =>
    underRoot
      ? readInRoot(ctx.root, target, { cap, what })
      : readBoundedOptional(target, { cap, what });
  const bytes = await read(file, MAX_CATALOG_BYTES, "a catalog");
  if (bytes === undefined) {
    throw new ExtctlError(
      "not-found",
      `the file ${underRoot ? ctx.root.path(file) : file} does not exist`,
    );
  }
  const signature = await read(
    file + SIGNATURE_SUFFIX,
    MAX_CATALOG_SIGNATURE_BYTES,
    "a catalog signature",
  );
  return signature === undefined ? { bytes } : { bytes, signature };
}

/** How one scheme's catalogs are read. */
type CatalogReader = (
  ctx: Context,
  url: string,
  options: CatalogFetchOptions,
  fromList: boolean,
) => Promise<FetchedCatalog>;

/** A reader for every catalog scheme: the compiler refuses a scheme without one. */
const CATALOG_READERS: Readonly<Record<CatalogScheme, CatalogReader>> = {
  https: (ctx, url, options) => fetchHttps(ctx, url, options),
  file: (ctx, url, _options, fromList) => fetchFile(ctx, url, fromList),
  oci: async (ctx, url, options) => (await import("./oci.js")).fetchOciCatalog(ctx, url, options),
};

async function fetchCatalogBytes(
  ctx: Context,
  url: string,
  options: CatalogFetchOptions,
  fromList: boolean,
): Promise<FetchedCatalog> {
  const scheme = catalogSchemeOf(url);
  if (scheme) return CATALOG_READERS[scheme](ctx, url, options, fromList);
  // A catalog decides what a node installs: plain http would let anyone on the path choose.
  if (/^http:/i.test(url))
    throw new ExtctlError("invalid-uri", `${url}: catalogs are read over https, not http`);
  throw new ExtctlError("invalid-uri", `${url} is not a catalog URL (${catalogSchemeList("://")})`);
}

/** The remembered state: per catalog URL, the newest `generated` time seen. */
interface CatalogState {
  generated: Record<string, string>;
}

async function readState(ctx: Context): Promise<CatalogState> {
  let bytes: Buffer | undefined;
  try {
    // Believed only when root owns it: a newer time planted there would refuse every catalog.
    bytes = await readOwnedInRoot(ctx.root, CATALOG_STATE_FILE, {
      cap: READ_CAPS.config,
      what: "the catalog state",
      warn: (m) => ctx.log.warn(m),
    });
  } catch (e) {
    ctx.log.warn(`cannot read ${ctx.root.path(CATALOG_STATE_FILE)}: ${(e as Error).message}`);
    return { generated: {} };
  }
  if (bytes === undefined) return { generated: {} };
  try {
    const value = JSON.parse(bytes.toString("utf8")) as { generated?: unknown };
    const generated: Record<string, string> = {};
    if (typeof value.generated === "object" && value.generated !== null) {
      for (const [url, time] of Object.entries(value.generated as Record<string, unknown>)) {
        if (typeof time === "string" && !Number.isNaN(Date.parse(time))) generated[url] = time;
      }
    }
    return { generated };
  } catch {
    ctx.log.warn(
      `${ctx.root.path(CATALOG_STATE_FILE)} is not JSON; the catalog times seen before are forgotten`,
    );
    return { generated: {} };
  }
}

/** Checks the signature (when present, or when the policy asks for one): the signer's subject. */
async function checkSignature(
  url: string,
  fetched: FetchedCatalog,
  policy: "any" | "signed",
  trustStore: () => Promise<TrustStore>,
): Promise<string | undefined> {
  if (fetched.signature === undefined) {
    if (policy === "signed") {
      throw new ExtctlError(
        "untrusted",
        `the catalog ${url} has no signature (${SIGNATURE_SUFFIX}) and the catalog policy is signed`,
        { hint: CATALOG_SIGNATURE.hint },
      );
    }
    return undefined;
  }
  const store = await trustStore();
  const trusted = store.certificates;
  const check = await verifyDetachedSignature(
    fetched.bytes,
    fetched.signature,
    trusted,
    `the catalog ${url}`,
    CATALOG_SIGNATURE,
  );
  if (check.ok) return check.signer.subject;
  const names =
    trusted.length === 0
      ? "no certificate is trusted (verity.d, --trust)"
      : `trusted: ${trusted.map((c) => `"${c.subject}" (${c.source})`).join(", ")}`;
  throw new ExtctlError("signature", `${check.message}; refusing it (${names})`, {
    hint: "a catalog whose signature does not verify may have been tampered with",
  });
}

/**
 * Reads the catalogs in order. One that cannot be read, is invalid, fails its signature check or
 * is older than one seen before from the same URL is skipped with a warning; only when none is
 * left is it an error, naming every URL and why. A catalog without `generated` is accepted but
 * never moves the remembered time (it cannot be ordered); nor does one generated more than a
 * day ahead of the clock (a time that would lock out every honest catalog until then).
 */
export async function loadCatalogs(
  ctx: Context,
  options: CatalogFetchOptions,
): Promise<LoadedCatalogs> {
  const given = options.urls !== undefined && options.urls.length > 0;
  const urls = given ? (options.urls as string[]) : await defaultCatalogUrls(ctx.root);
  if (urls.length === 0) {
    throw new ExtctlError("config", "no extension catalog is configured", {
      hint: `give --catalog URL, or list catalog URLs in ${ctx.root.path(DEFAULT_CATALOGS_FILE)}`,
    });
  }
  const policy = options.policy ?? "any";
  let store: Promise<TrustStore> | undefined;
  const trustStore = () => (store ??= loadTrustStore(ctx, options.trust ?? []));
  const state = await readState(ctx);
  const result: LoadedCatalogs = { catalogs: [], skipped: [], signed: {} };
  let changed = false;
  // Every catalog unreachable (not one invalid or refused): the check is worth trying later.
  let allTemporary = true;
  for (const url of urls) {
    try {
      const fetched = await fetchCatalogBytes(ctx, url, options, !given);
      const signer = await checkSignature(url, fetched, policy, trustStore);
      const catalog = parseCatalog(fetched.bytes, url);
      const seen = state.generated[url];
      if (catalog.generated !== undefined && seen !== undefined) {
        if (Date.parse(catalog.generated) < Date.parse(seen)) {
          throw new ExtctlError(
            "catalog",
            `${url} was generated at ${catalog.generated}, older than ${seen} seen before: a stale or replayed catalog`,
            { hint: "the server or a mirror serves an old copy; refusing it" },
          );
        }
      }
      if (
        catalog.generated !== undefined &&
        (seen === undefined || Date.parse(catalog.generated) > Date.parse(seen))
      ) {
        if (Date.parse(catalog.generated) > Date.now() + MAX_CLOCK_SKEW_MS) {
          // Remembering a time far ahead would refuse every honest catalog until then (a
          // poisoned or mistyped one); a node whose clock is behind just remembers nothing.
          ctx.log.warn(
            `${url} says it was generated at ${catalog.generated}, more than a day ahead of this node's clock; not remembering that time`,
          );
        } else {
          state.generated[url] = catalog.generated;
          changed = true;
        }
      }
      for (const warning of catalog.warnings) ctx.log.warn(`the catalog ${url}: ${warning}`);
      if (options.remember !== false) await fetched.keep?.();
      result.catalogs.push(catalog);
      result.signed[url] = signer;
      ctx.log.debug(
        `catalog ${url}: ${catalog.layers.length} extensions${signer ? `, signed by "${signer}"` : ", unsigned"}`,
      );
    } catch (e) {
      if (!(e instanceof ExtctlError) && errnoCode(e) === undefined) throw e;
      const reason = (e as Error).message;
      if (!isTemporary(e)) allTemporary = false;
      result.skipped.push({ url, reason });
      ctx.log.warn(`skipping the catalog ${url}: ${reason}`);
    }
  }
  if (result.catalogs.length === 0) {
    throw new ExtctlError(
      "catalog",
      `no catalog could be read: ${result.skipped.map((s) => `${s.url}: ${s.reason}`).join("; ")}`,
      {
        hint: "check the catalog URLs, the network and --ca-cert",
        ...(allTemporary ? { exitCode: EX_TEMPFAIL } : {}),
      },
    );
  }
  if (changed && options.remember !== false) {
    const data = { generated: Object.fromEntries(Object.entries(state.generated).sort()) };
    await writeFileInRoot(ctx.root, CATALOG_STATE_FILE, JSON.stringify(data, null, 2) + "\n");
  }
  return result;
}
