// The HTTP side of talking to a registry, kept apart from what is asked of it (client.ts) as
// oras-go's registry/remote/auth + retry and go-containerregistry's remote/transport do: one
// exchange loop that answers 401 challenges (Basic, or Bearer tokens from the realm, cached per
// realm, scope and credentials), retries 429, 5xx and dropped connections (honouring Retry-After),
// follows redirects without carrying the registry's Authorization off its origin or down to plain
// http, and maps network, TLS and status failures to sentences. Blob bodies are read by http1.ts
// through the same loop.
import type { Readable } from "node:stream";
import type * as UndiciModule from "undici";
import type { Dispatcher } from "undici";
import type { Context } from "../../../util/context.js";
import { EX_TEMPFAIL, ExtctlError, errnoCode, messageOf } from "../../../util/errors.js";
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
import { bulkGet, type BulkResponse } from "../http1.js";
import { trustedCAs } from "../../net/trust.js";
import { proxyFor, proxySettings } from "../../net/proxy.js";
import { MAX_REDIRECTS, retryAfterMs } from "../../net/retry.js";

export const MAX_JSON_BYTES = 1024 * 1024;
const MAX_ERROR_BODY = 64 * 1024;
const MAX_RETRIES = 4;
const MAX_RETRY_AFTER_MS = 30_000;

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

export interface RequestOptions {
  headers?: Record<string, string>;
  /** Called on every attempt, so retried requests get a fresh body. */
  body?: () => Buffer | string | Readable;
  followRedirects?: boolean;
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

export function isRetryableNetworkError(e: unknown): boolean {
  if (e instanceof ExtctlError) return false;
  const code = causeCode(e);
  return code !== undefined && RETRYABLE_NETWORK.has(code);
}

/** A response from either transport: undici's, or http1.ts's for blobs. */
export interface Answer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<unknown> & { dump(): Promise<unknown>; destroy(): unknown };
}

export async function readBounded(
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

export function headerValue(res: Answer, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** One registry endpoint (origin and repository) with its credentials, token and agent. */
export class RegistryTransport {
  readonly registry: string;
  readonly timeoutMs: number;
  readonly repository: string;
  readonly baseUrl: string;
  private authHeader: Token | undefined;
  private creds: Credentials | undefined;
  private credsLooked = false;
  private readonly scopes: string[];
  private readonly retryBaseMs: number;
  readonly maxRetries: number;

  private constructor(
    readonly ctx: Context,
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
  ): Promise<RegistryTransport> {
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
    return new RegistryTransport(ctx, undici, dispatcher, ca, ref, insecure, insecureList, options);
  }

  async close(): Promise<void> {
    await this.dispatcher.close().catch(() => {});
  }

  url(pathOrUrl: string): string {
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

  networkError(e: unknown, target: string): ExtctlError {
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

  async backoff(attempt: number, retryAfter?: string): Promise<void> {
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
}
