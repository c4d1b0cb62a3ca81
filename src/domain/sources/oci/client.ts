// A small OCI distribution client on undici: manifests, tokens, uploads, auth challenges, retries
// and redirects, with every size and count bounded. Blob downloads go through the same auth, retry
// and redirect loop but read their bodies with http1.ts (bulk bytes without undici's per-chunk
// buffers), hashed and checked while they pass.
import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { Transform, type Readable } from "node:stream";
import type * as UndiciModule from "undici";
import type { Dispatcher } from "undici";
import type { Context } from "../../../util/context.js";
import { EX_TEMPFAIL, ExtctlError, errnoCode, fsError, messageOf } from "../../../util/errors.js";
import { userAgent } from "../../../util/user-agent.js";
import {
  basicHeader,
  lookupCredentials,
  parseChallenge,
  parseCreds,
  parseTokenResponse,
  type Credentials,
  type Token,
} from "./auth.js";
import { MEDIA, isDigest, type Descriptor } from "../../oci/manifest.js";
import { apiHost, type Reference } from "../../oci/reference.js";
import { canonicalRegistry, canonicalRegistryHost } from "../../oci/registry-host.js";
import {
  blockedError,
  findRegistry,
  insecureHosts,
  loadRegistriesConf,
  type RegistriesConf,
} from "./registries-conf.js";
import { DEFAULT_STALL_TIMEOUT_MS } from "../stall-guard.js";
import { bulkGet, MAX_VIEW, type BulkBody, type BulkResponse } from "../http1.js";
import { StagedWriter } from "../staged-writer.js";
import { trustedCAs } from "../../net/trust.js";
import { proxyFor, proxySettings } from "../../net/proxy.js";
import { MAX_REDIRECTS, retryAfterMs } from "../../net/retry.js";

export const MANIFEST_ACCEPT = [
  MEDIA.ociIndex,
  MEDIA.ociManifest,
  MEDIA.dockerList,
  MEDIA.dockerManifest,
].join(", ");

/** Manifests and indexes are small; anything bigger is refused rather than buffered. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_JSON_BYTES = 1024 * 1024;
const MAX_ERROR_BODY = 64 * 1024;
const MAX_RETRIES = 4;
const MAX_RETRY_AFTER_MS = 30_000;

export interface FetchedManifest {
  mediaType: string;
  digest: string;
  bytes: Buffer;
  json: Record<string, unknown>;
}

export interface ClientOptions {
  creds?: string;
  caCerts?: string[];
  insecureRegistries?: string[];
  /** Access the client will need, e.g. ["pull"] or ["pull", "push"]. */
  actions?: readonly string[];
  /** Other repositories (same registry) it will read from, e.g. to mount blobs. */
  alsoPull?: readonly string[];
  /** Connect/header limit, and the low-speed limit for blobs (see stall-guard.ts). */
  timeoutMs?: number;
  /** Test hook: shorter backoff between retries. */
  retryBaseMs?: number;
  /** How often a failed request is tried again (default 4); a mirror gets fewer. */
  maxRetries?: number;
  /** registries.conf, already read; otherwise the client reads it from the context's root. */
  registries?: RegistriesConf;
  /**
   * Plain http for this endpoint, as registries.conf says for the mirror or origin chosen by
   * pull.ts (--insecure-registry still applies). Unset: the entry matching the reference decides,
   * and a pull from a blocked one is refused.
   */
  insecure?: boolean;
}

interface RequestOptions {
  headers?: Record<string, string>;
  /** Called on every attempt, so retried requests get a fresh body. */
  body?: () => Buffer | string | Readable;
  followRedirects?: boolean;
}

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** An --insecure-registry value as written (an optional scheme and trailing slash allowed). */
function insecureEntry(written: string): string {
  return written.replace(/^https?:\/\//i, "").replace(/\/+$/, "");
}

/**
 * Whether `registry` was named by --insecure-registry (host:port, or the host alone), both sides
 * compared in their canonical form (registry-host.ts): `LOCALHOST:05001` names localhost:5001.
 */
export function isInsecure(registry: string, insecure: readonly string[] = []): boolean {
  const canonical = canonicalRegistryHost(registry).host;
  if (canonical === undefined) return false;
  const host = canonical.replace(/:\d+$/, "");
  return insecure.some((h) => {
    const entry = canonicalRegistryHost(insecureEntry(h)).host;
    return entry === canonical || entry === host;
  });
}

const tokenCache = new Map<string, Token>();

type Undici = typeof UndiciModule;

/** Loaded on first use: most commands never talk to a registry. (V8's wasm tier: cli/main.ts.) */
async function loadUndici(): Promise<Undici> {
  return import("undici");
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const TLS_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
]);

const RETRYABLE_NETWORK = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED",
]);

function causeCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur; i++) {
    const code = errnoCode(cur);
    if (code && code !== "UND_ERR" && !code.startsWith("ERR_STREAM")) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return errnoCode(e);
}

function isRetryableNetworkError(e: unknown): boolean {
  if (e instanceof ExtctlError) return false;
  const code = causeCode(e);
  return code !== undefined && RETRYABLE_NETWORK.has(code);
}

/** A response from either transport: undici's, or http1.ts's for blobs. */
interface Answer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<unknown> & { dump(): Promise<unknown>; destroy(): unknown };
}

async function readBounded(
  body: AsyncIterable<unknown> & { destroy(): unknown },
  max: number,
  what: string,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += (chunk as Buffer).length;
    if (total > max) {
      body.destroy();
      throw new ExtctlError("registry", `${what} is larger than ${max} bytes; refusing to read it`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The registry's own words from an error body ({"errors":[{"code","message"}]}), if any. */
async function registryErrorText(res: Answer): Promise<string> {
  try {
    const text = (await readBounded(res.body, MAX_ERROR_BODY, "error body")).toString("utf8");
    const parsed = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    const first = parsed.errors?.[0];
    if (first) return [first.code, first.message].filter(Boolean).join(": ");
  } catch {
    // Not JSON or too big: the status line says enough.
  }
  return "";
}

function headerValue(res: Answer, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export class RegistryClient {
  readonly registry: string;
  private readonly timeoutMs: number;
  readonly repository: string;
  readonly baseUrl: string;
  private authHeader: Token | undefined;
  private creds: Credentials | undefined;
  private credsLooked = false;
  private readonly scopes: string[];
  private readonly retryBaseMs: number;
  private readonly maxRetries: number;

  private constructor(
    private readonly ctx: Context,
    private readonly undici: Undici,
    private readonly dispatcher: Dispatcher,
    /** For blob downloads (http1.ts); undefined: Node's roots, as undici uses. */
    private readonly ca: readonly string[] | undefined,
    ref: Reference,
    private readonly insecure: boolean,
    private readonly insecureList: readonly string[],
    options: ClientOptions,
  ) {
    this.registry = ref.registry;
    this.repository = ref.repository;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.baseUrl = `${insecure ? "http" : "https"}://${apiHost(ref.registry)}`;
    const actions = options.actions ?? ["pull"];
    this.scopes = [
      `repository:${ref.repository}:${actions.join(",")}`,
      ...(options.alsoPull ?? []).map((r) => `repository:${r}:pull`),
    ];
    if (options.creds !== undefined) {
      this.creds = parseCreds(options.creds);
      this.credsLooked = true;
    }
    this.retryBaseMs = options.retryBaseMs ?? 250;
    this.maxRetries = options.maxRetries ?? MAX_RETRIES;
  }

  static async create(
    ctx: Context,
    ref: Reference,
    options: ClientOptions = {},
  ): Promise<RegistryClient> {
    const undici = await loadUndici();
    const registries = options.registries ?? (await loadRegistriesConf(ctx));
    let confInsecure = options.insecure;
    if (confInsecure === undefined) {
      const match = findRegistry(registries, ref);
      // registries.conf blocks pulls; a push (which never goes to a mirror) is not a pull.
      const pushing = (options.actions ?? ["pull"]).includes("push");
      if (match?.entry.blocked && !pushing) throw blockedError(ref, match.entry);
      confInsecure = match?.entry.insecure ?? false;
    }
    // A value that names no host the connection could reach is a mistake to say, not to ignore.
    for (const h of options.insecureRegistries ?? [])
      canonicalRegistry(insecureEntry(h), "--insecure-registry");
    const insecureList = [...(options.insecureRegistries ?? []), ...insecureHosts(registries)];
    const insecure = confInsecure || isInsecure(ref.registry, insecureList);
    const connect: Record<string, unknown> = { rejectUnauthorized: true };
    // The system's CAs as for https: (a registry behind a fleet's private CA), plus --ca-cert.
    const ca = await trustedCAs(options.caCerts ?? [], ctx.env);
    connect.ca = ca;
    const agentOptions = {
      connect,
      headersTimeout: options.timeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      bodyTimeout: options.timeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      maxResponseSize: -1,
    };
    // Manifests and tokens through the same proxies as blobs (domain/net/proxy.ts's variables;
    // undici applies NO_PROXY itself).
    const proxies = proxySettings(ctx.env);
    const dispatcher =
      proxies.httpsProxy || proxies.httpProxy
        ? new undici.EnvHttpProxyAgent({
            ...agentOptions,
            ...proxies,
            requestTls: { ca, rejectUnauthorized: true },
          })
        : new undici.Agent(agentOptions);
    return new RegistryClient(ctx, undici, dispatcher, ca, ref, insecure, insecureList, options);
  }

  async close(): Promise<void> {
    await this.dispatcher.close().catch(() => {});
  }

  private url(pathOrUrl: string): string {
    return /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : new URL(pathOrUrl, this.baseUrl).toString();
  }

  private async credentials(): Promise<Credentials | undefined> {
    if (!this.credsLooked) {
      this.credsLooked = true;
      this.creds = await lookupCredentials(this.registry, this.repository, this.ctx.env, (m) =>
        this.ctx.log.warn(m),
      );
      if (this.creds)
        this.ctx.log.debug(`using credentials for ${this.registry} from ${this.creds.origin}`);
    }
    return this.creds;
  }

  private networkError(e: unknown, target: string): ExtctlError {
    if (e instanceof ExtctlError) return e;
    const code = causeCode(e);
    const detail = messageOf(e);
    if (code && TLS_CODES.has(code)) {
      return new ExtctlError(
        "tls",
        `TLS verification of ${new URL(target).host} failed (${code})`,
        {
          cause: e,
          hint: "trust its CA with --ca-cert FILE, or use --insecure-registry HOST for a plain-http registry",
        },
      );
    }
    if (code === "EPROTO" || /wrong version number|packet length too long/i.test(detail)) {
      return new ExtctlError("tls", `${new URL(target).host} does not speak TLS`, {
        cause: e,
        hint: `if it is a plain-http registry, pass --insecure-registry ${this.registry}`,
      });
    }
    if (code?.startsWith("HPE_")) return new ExtctlError("registry", detail, { cause: e });
    return new ExtctlError("registry", `cannot reach ${new URL(target).host}: ${code ?? detail}`, {
      cause: e,
      exitCode: EX_TEMPFAIL,
      hint: "check the registry address and that it is running",
    });
  }

  private async backoff(attempt: number, retryAfter?: string): Promise<void> {
    let ms = this.retryBaseMs * 2 ** attempt * (0.75 + Math.random() / 2);
    const asked = retryAfter === undefined ? undefined : retryAfterMs(retryAfter, Date.now());
    if (asked !== undefined) ms = asked;
    await sleep(Math.min(ms, MAX_RETRY_AFTER_MS));
  }

  /**
   * One HTTP exchange with auth, retries (429, 5xx, dropped connections) and redirects. The
   * registry's Authorization never leaves its origin, so blob storage behind a redirect never
   * sees it. The caller owns the returned body.
   */
  request(
    method: string,
    pathOrUrl: string,
    options: RequestOptions = {},
  ): Promise<Dispatcher.ResponseData> {
    return this.exchange(method, pathOrUrl, options, (m, target, headers) =>
      this.undici.request(target, {
        method: m,
        headers,
        body: options.body?.() ?? null,
        dispatcher: this.dispatcher,
      }),
    );
  }

  /**
   * A GET whose body is bulk bytes (a blob), read by http1.ts instead of undici: the same auth,
   * retries and redirects as request().
   */
  bulkRequest(pathOrUrl: string, options: RequestOptions, what: string): Promise<BulkResponse> {
    return this.exchange("GET", pathOrUrl, options, (_m, target, headers) => {
      const url = new URL(target);
      const proxy = proxyFor(url, this.ctx.env);
      return bulkGet({
        url,
        headers,
        ca: this.ca,
        timeoutMs: this.timeoutMs,
        what,
        ...(proxy ? { proxy } : {}),
      });
    });
  }

  private async exchange<R extends Answer>(
    method: string,
    pathOrUrl: string,
    options: RequestOptions,
    send: (method: string, target: string, headers: Record<string, string>) => Promise<R>,
  ): Promise<R> {
    let target = this.url(pathOrUrl);
    const origin = new URL(this.baseUrl).origin;
    let redirects = 0;
    let attempts = 0;
    let authTried = false;
    let currentMethod = method;
    for (;;) {
      const sameOrigin = new URL(target).origin === origin;
      const headers: Record<string, string> = {
        "user-agent": userAgent(),
        ...options.headers,
      };
      if (this.authHeader && this.authHeader.expiresAt <= Date.now()) this.authHeader = undefined;
      if (sameOrigin && this.authHeader) headers.authorization = this.authHeader.header;
      let res: R;
      try {
        res = await send(currentMethod, target, headers);
      } catch (e) {
        if (isRetryableNetworkError(e) && attempts < this.maxRetries) {
          this.ctx.log.debug(`${currentMethod} ${target}: ${causeCode(e)}; retrying`);
          await this.backoff(attempts++);
          continue;
        }
        throw this.networkError(e, target);
      }
      const status = res.statusCode;
      if (status === 401 && sameOrigin && !authTried) {
        const header = headerValue(res, "www-authenticate");
        await res.body.dump();
        authTried = true;
        await this.authenticate(header);
        continue;
      }
      if ((status === 429 || status >= 500) && attempts < this.maxRetries) {
        const retryAfter = headerValue(res, "retry-after");
        await res.body.dump();
        this.ctx.log.debug(`${currentMethod} ${target}: HTTP ${status}; retrying`);
        await this.backoff(attempts++, retryAfter);
        continue;
      }
      if (
        options.followRedirects !== false &&
        [301, 302, 303, 307, 308].includes(status) &&
        headerValue(res, "location")
      ) {
        const location = headerValue(res, "location") as string;
        await res.body.dump();
        if (++redirects > MAX_REDIRECTS) {
          throw new ExtctlError(
            "registry",
            `too many redirects fetching ${pathOrUrl} from ${this.registry}`,
          );
        }
        const next = new URL(location, target);
        if (
          next.protocol === "http:" &&
          new URL(target).protocol === "https:" &&
          !isInsecure(next.host, this.insecureList)
        ) {
          throw new ExtctlError(
            "registry",
            `${this.registry} redirected to plain http (${next.host}); refusing`,
            {
              hint: `pass --insecure-registry ${next.host} if you trust it`,
            },
          );
        }
        target = next.toString();
        if (status === 303) currentMethod = "GET";
        continue;
      }
      return res;
    }
  }

  /** Answers a 401 challenge: sets a Basic header or fetches (or reuses) a Bearer token. */
  private async authenticate(header: string | undefined): Promise<void> {
    const challenge = header ? parseChallenge(header) : undefined;
    const creds = await this.credentials();
    if (!challenge || challenge.scheme === "basic") {
      if (creds) this.authHeader = { header: basicHeader(creds), expiresAt: Infinity };
      return;
    }
    if (challenge.scheme !== "bearer") {
      throw new ExtctlError(
        "registry",
        `${this.registry} asks for "${challenge.scheme}" authentication, which extctl does not speak`,
      );
    }
    const realm = challenge.params.realm;
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm ?? "");
    } catch {
      throw new ExtctlError(
        "registry",
        `${this.registry} sent a token challenge without a valid realm URL`,
      );
    }
    if (
      realmUrl.protocol !== "https:" &&
      !(
        realmUrl.protocol === "http:" &&
        (this.insecure || isInsecure(realmUrl.host, this.insecureList))
      )
    ) {
      throw new ExtctlError(
        "registry",
        `${this.registry} wants tokens from ${realmUrl.origin} over plain http; refusing`,
        {
          hint: `pass --insecure-registry ${realmUrl.host} if you trust it`,
        },
      );
    }
    const scopes = new Set(this.scopes);
    for (const s of (challenge.params.scope ?? "").split(" ")) if (s) scopes.add(s);
    if (challenge.params.service) realmUrl.searchParams.set("service", challenge.params.service);
    for (const s of scopes) realmUrl.searchParams.append("scope", s);
    const key = `${realmUrl.toString()}|${creds ? `${creds.username}:${creds.password}` : ""}`;
    const cached = tokenCache.get(key);
    if (cached && cached.expiresAt > Date.now()) {
      this.authHeader = cached;
      return;
    }
    const headers: Record<string, string> = {
      "user-agent": userAgent(),
      accept: "application/json",
    };
    if (creds) headers.authorization = basicHeader(creds);
    let res: Dispatcher.ResponseData;
    try {
      res = await this.undici.request(realmUrl, {
        method: "GET",
        headers,
        dispatcher: this.dispatcher,
      });
    } catch (e) {
      throw this.networkError(e, realmUrl.toString());
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      throw new ExtctlError(
        "registry",
        `the token server of ${this.registry} refused ${creds ? `the credentials from ${creds.origin}` : "anonymous access"} (HTTP ${res.statusCode})`,
        { hint: "give --creds USER:PASS or log in with skopeo/podman/docker login" },
      );
    }
    if (res.statusCode !== 200) {
      const text = await registryErrorText(res);
      throw new ExtctlError(
        "registry",
        `the token server of ${this.registry} answered HTTP ${res.statusCode}${text ? ` (${text})` : ""}`,
        res.statusCode === 429 || res.statusCode >= 500 ? { exitCode: EX_TEMPFAIL } : {},
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(
        (await readBounded(res.body, MAX_JSON_BYTES, "the token response")).toString("utf8"),
      );
    } catch (e) {
      if (e instanceof ExtctlError) throw e;
      throw new ExtctlError(
        "registry",
        `the token server of ${this.registry} answered with invalid JSON`,
      );
    }
    const token = parseTokenResponse(json);
    if (tokenCache.size > 64) tokenCache.clear();
    tokenCache.set(key, token);
    this.authHeader = token;
  }

  /** Turns an unexpected status into a sentence (401/403/404 get their own wording). */
  async fail(res: Answer, what: string): Promise<never> {
    const text = await registryErrorText(res);
    const detail = text ? ` (${text})` : "";
    const status = res.statusCode;
    if (status === 401 || status === 403) {
      const creds = this.creds;
      throw new ExtctlError(
        "registry",
        `${this.registry} refused access to ${this.repository} while trying to ${what}: HTTP ${status}${detail}, ${creds ? `with the credentials from ${creds.origin}` : "without credentials"}`,
        {
          hint: creds
            ? "check the user name, password and the repository's permissions"
            : "give --creds USER:PASS or log in with skopeo/podman/docker login",
        },
      );
    }
    if (status === 404) {
      throw new ExtctlError(
        "not-found",
        `${this.registry}/${this.repository}: cannot ${what}: not found${detail}`,
        {
          hint: "check the repository name and tag",
        },
      );
    }
    throw new ExtctlError(
      "registry",
      `${this.registry} answered HTTP ${status} when asked to ${what}${detail}`,
      status === 429 || status >= 500
        ? { exitCode: EX_TEMPFAIL, hint: "the registry is down or busy; try later" }
        : {},
    );
  }

  /** Fetches a manifest or index by tag or digest and checks it against a pinned digest. */
  async getManifest(selector: string, repository = this.repository): Promise<FetchedManifest> {
    const res = await this.request("GET", `/v2/${repository}/manifests/${selector}`, {
      headers: { accept: MANIFEST_ACCEPT },
    });
    if (res.statusCode !== 200) await this.fail(res, `fetch the manifest ${selector}`);
    const length = Number(headerValue(res, "content-length") ?? "0");
    if (length > MAX_MANIFEST_BYTES) {
      await res.body.dump();
      throw new ExtctlError(
        "registry",
        `the manifest ${selector} is ${length} bytes, more than the ${MAX_MANIFEST_BYTES} extctl accepts`,
      );
    }
    const bytes = await readBounded(res.body, MAX_MANIFEST_BYTES, `the manifest ${selector}`);
    const digest = sha256Digest(bytes);
    if (isDigest(selector) && digest !== selector) {
      throw new ExtctlError(
        "checksum",
        `the manifest served for ${selector} has digest ${digest}; refusing it`,
      );
    }
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
    } catch {
      throw new ExtctlError(
        "registry",
        `the manifest ${selector} from ${this.registry} is not valid JSON`,
      );
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new ExtctlError(
        "registry",
        `the manifest ${selector} from ${this.registry} is not a JSON object`,
      );
    }
    const headerType = (headerValue(res, "content-type") ?? "").split(";")[0]?.trim() ?? "";
    const mediaType = typeof json.mediaType === "string" ? json.mediaType : headerType;
    return { mediaType, digest, bytes, json };
  }

  /** Whether the manifest exists (404 is an answer, not an error). */
  async findManifest(selector: string): Promise<FetchedManifest | undefined> {
    try {
      return await this.getManifest(selector);
    } catch (e) {
      if (e instanceof ExtctlError && e.code === "not-found") return undefined;
      throw e;
    }
  }

  /** A blob's bytes as a stream that fails if they do not match the descriptor. */
  async openBlob(desc: Descriptor): Promise<Readable> {
    const res = await this.request("GET", `/v2/${this.repository}/blobs/${desc.digest}`);
    if (res.statusCode !== 200) await this.fail(res, `fetch the blob ${desc.digest}`);
    const verifier = blobVerifier(desc, this.registry);
    res.body.on("error", (e) => verifier.destroy(this.networkError(e, this.baseUrl)));
    // pipe() does not pass a destroy upstream: a consumer that gives up early (a bad layer)
    // would leave the response paused mid-body, and close() would wait for it forever.
    verifier.on("close", () => {
      if (!res.body.readableEnded) res.body.destroy();
    });
    return res.body.pipe(verifier);
  }

  /** Reads a small blob (a config) whole, bounded by `max`. */
  async readBlob(desc: Descriptor, max = MAX_JSON_BYTES): Promise<Buffer> {
    if (desc.size > max) {
      throw new ExtctlError(
        "registry",
        `the blob ${desc.digest} is ${desc.size} bytes, more than the ${max} extctl reads here`,
      );
    }
    return readBounded(await this.openBlob(desc), max, `the blob ${desc.digest}`);
  }

  /**
   * Streams a blob into `file` from position 0, hashing while bytes pass; a dropped connection
   * resumes with a Range request where it stopped. Fails (checksum) on a size or digest mismatch.
   */
  async downloadBlob(
    desc: Descriptor,
    file: FileHandle,
    onBytes: (n: number) => void,
  ): Promise<void> {
    const hash = createHash("sha256");
    const writer = new StagedWriter(file, { maxView: MAX_VIEW, hash });
    const what = `${this.registry} (blob ${desc.digest})`;
    let attempts = 0;
    for (;;) {
      const received = writer.position;
      const headers: Record<string, string> = {};
      if (received > 0) headers.range = `bytes=${received}-`;
      const res = await this.bulkRequest(
        `/v2/${this.repository}/blobs/${desc.digest}`,
        { headers },
        what,
      );
      let skip = 0;
      if (res.statusCode === 206 && received > 0) {
        const start = /^bytes (\d+)-/.exec(headerValue(res, "content-range") ?? "");
        if (!start || Number(start[1]) !== received) {
          await res.body.dump();
          throw new ExtctlError(
            "registry",
            `${this.registry} resumed the blob ${desc.digest} at the wrong offset`,
          );
        }
      } else if (res.statusCode === 200) {
        skip = received;
      } else {
        await this.fail(res, `fetch the blob ${desc.digest}`);
      }
      try {
        await this.fillFrom(res.body, writer, desc, skip, onBytes);
        await writer.flush();
        break;
      } catch (e) {
        // Keep what arrived intact, so a resume starts after it rather than from zero.
        if (writer.failure !== undefined) {
          await writer.settled();
          throw fsError(writer.failure, "write the blob to disk");
        }
        if (!isRetryableNetworkError(e) || attempts >= this.maxRetries) {
          await writer.settled();
          throw this.networkError(e, this.baseUrl);
        }
        await writer.flush();
        this.ctx.log.debug(
          `blob ${desc.digest}: connection dropped at ${writer.position} bytes; resuming`,
        );
        await this.backoff(attempts++);
      }
    }
    if (writer.position !== desc.size) {
      throw new ExtctlError(
        "checksum",
        `the blob ${desc.digest} from ${this.registry} is ${writer.position} bytes, but its descriptor says ${desc.size}`,
      );
    }
    const digest = `sha256:${hash.digest("hex")}`;
    if (digest !== desc.digest) {
      throw new ExtctlError(
        "checksum",
        `the blob from ${this.registry} has digest ${digest}, not ${desc.digest} as its manifest says; it was corrupted on the way`,
        {
          hint: "nothing was installed; try again, and check any proxy between you and the registry",
        },
      );
    }
  }

  /** Feeds a response body to `writer`, after dropping `skip` bytes the file already has. */
  private async fillFrom(
    body: BulkBody,
    writer: StagedWriter,
    desc: Descriptor,
    skip: number,
    onBytes: (n: number) => void,
  ): Promise<void> {
    let toSkip = skip;
    await body.pipe(
      (view) => {
        let bytes = view;
        if (toSkip > 0) {
          const drop = Math.min(toSkip, bytes.length);
          toSkip -= drop;
          bytes = bytes.subarray(drop);
          if (bytes.length === 0) return undefined;
        }
        if (writer.position + bytes.length > desc.size) {
          throw new ExtctlError(
            "checksum",
            `the blob ${desc.digest} from ${this.registry} is larger than the ${desc.size} bytes its descriptor says`,
          );
        }
        onBytes(bytes.length);
        return writer.write(bytes);
      },
      () => writer.space(),
    );
  }

  async blobExists(digest: string, repository = this.repository): Promise<boolean> {
    const res = await this.request("HEAD", `/v2/${repository}/blobs/${digest}`);
    await res.body.dump();
    if (res.statusCode === 200) return true;
    if (res.statusCode === 404) return false;
    return this.fail(res, `check for the blob ${digest}`);
  }

  /**
   * Asks the registry to mount a blob from another repository. Returns true when it did; when it
   * declines it opens an upload session instead, whose location is returned.
   */
  async mountBlob(digest: string, from: string): Promise<true | string> {
    const q = new URLSearchParams({ mount: digest, from });
    const res = await this.request(
      "POST",
      `/v2/${this.repository}/blobs/uploads/?${q.toString()}`,
      {
        headers: { "content-length": "0" },
      },
    );
    if (res.statusCode === 201) {
      await res.body.dump();
      return true;
    }
    if (res.statusCode === 202) return this.uploadLocation(res);
    return this.fail(res, `mount the blob ${digest} from ${from}`);
  }

  private async uploadLocation(res: Dispatcher.ResponseData): Promise<string> {
    const location = headerValue(res, "location");
    await res.body.dump();
    if (!location)
      throw new ExtctlError("registry", `${this.registry} started an upload without a Location`);
    return this.url(new URL(location, this.baseUrl + "/").toString());
  }

  async startUpload(): Promise<string> {
    const res = await this.request("POST", `/v2/${this.repository}/blobs/uploads/`, {
      headers: { "content-length": "0" },
    });
    if (res.statusCode !== 202) return this.fail(res, "start a blob upload");
    return this.uploadLocation(res);
  }

  /**
   * Uploads a blob: one PUT when it is small, else PATCH chunks of `chunkSize` then a closing
   * PUT. `open(start, end)` gives a fresh stream of bytes [start, end) for each attempt.
   */
  async uploadBlob(
    desc: { digest: string; size: number },
    open: (start: number, end: number) => Readable | Buffer,
    options: { chunkSize: number; location?: string; onBytes?: (n: number) => void },
  ): Promise<void> {
    let location = options.location ?? (await this.startUpload());
    const withDigest = (loc: string) => {
      const u = new URL(loc);
      u.searchParams.set("digest", desc.digest);
      return u.toString();
    };
    if (desc.size <= options.chunkSize) {
      const res = await this.request("PUT", withDigest(location), {
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(desc.size),
        },
        body: () => open(0, desc.size),
      });
      if (res.statusCode !== 201) return this.fail(res, `upload the blob ${desc.digest}`);
      await res.body.dump();
      options.onBytes?.(desc.size);
      return;
    }
    for (let start = 0; start < desc.size; start += options.chunkSize) {
      const end = Math.min(desc.size, start + options.chunkSize);
      const res = await this.request("PATCH", location, {
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(end - start),
          "content-range": `${start}-${end - 1}`,
        },
        body: () => open(start, end),
      });
      if (res.statusCode !== 202)
        return this.fail(res, `upload a chunk of the blob ${desc.digest}`);
      location = await this.uploadLocation(res);
      options.onBytes?.(end - start);
    }
    const res = await this.request("PUT", withDigest(location), {
      headers: { "content-length": "0" },
    });
    if (res.statusCode !== 201)
      return this.fail(res, `finish the upload of the blob ${desc.digest}`);
    await res.body.dump();
  }

  async putManifest(selector: string, mediaType: string, bytes: Buffer): Promise<string> {
    const res = await this.request("PUT", `/v2/${this.repository}/manifests/${selector}`, {
      headers: { "content-type": mediaType, "content-length": String(bytes.length) },
      body: () => bytes,
    });
    if (res.statusCode !== 201) return this.fail(res, `store the manifest ${selector}`);
    await res.body.dump();
    return sha256Digest(bytes);
  }
}

/** A pass-through that counts and hashes a blob and fails at the end if it is not the one named. */
export function blobVerifier(desc: Descriptor, registry: string): Transform {
  const hash = createHash("sha256");
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > desc.size) {
        done(
          new ExtctlError(
            "checksum",
            `the blob ${desc.digest} from ${registry} is larger than the ${desc.size} bytes its descriptor says`,
          ),
        );
        return;
      }
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const digest = `sha256:${hash.digest("hex")}`;
      if (size !== desc.size) {
        done(
          new ExtctlError(
            "checksum",
            `the blob ${desc.digest} from ${registry} is ${size} bytes, but its descriptor says ${desc.size}`,
          ),
        );
      } else if (digest !== desc.digest) {
        done(
          new ExtctlError(
            "checksum",
            `the blob from ${registry} has digest ${digest}, not ${desc.digest} as its manifest says; it was corrupted on the way`,
            {
              hint: "nothing was installed; try again, and check any proxy between you and the registry",
            },
          ),
        );
      } else done();
    },
  });
}
