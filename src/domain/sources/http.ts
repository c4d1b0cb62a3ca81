// http: and https: sources on http1.ts (a lean HTTP/1.1 reader for bulk bytes): TLS verified
// against the system CAs plus --ca-cert, redirects followed a bounded number of times (never
// from https down to http), timeouts, and every failure said in one sentence with nothing left
// in the store.
import type { Context } from "../../util/context.js";
import { EX_TEMPFAIL, ExtctlError, errnoCode, messageOf } from "../../util/errors.js";
import { userAgent } from "../../util/user-agent.js";
import { checkStoreName, httpFileName } from "./uri.js";
import { streamToStore } from "./stream-to-store.js";
import {
  dropPartial,
  dropPartialSync,
  findPartial,
  keepPartialSync,
  partialPaths,
  type PartialDownload,
} from "./partial-download.js";
import { humanBytes } from "../../util/progress.js";
import { storeRoom } from "./expansion.js";
import { DEFAULT_STALL_TIMEOUT_MS } from "./stall-guard.js";
import { bulkGet, type BulkRequest, type BulkResponse } from "./http1.js";
import type { FetchRequest, FetchedImage, Source } from "./types.js";
import { trustedCAs } from "../net/trust.js";
import { proxyFor } from "../net/proxy.js";
import { MAX_REDIRECTS, retryAfterMs } from "../net/retry.js";

export interface HttpFetchRequest extends FetchRequest {
  name?: string;
  /** Milliseconds without progress before giving up. */
  timeoutMs?: number;
}

const RETRIED = new Set([429, 502, 503, 504]);
const MAX_RETRIES = 4;
const RETRY_BASE_MS = 500;
/** The longest a Retry-After is honoured; a server asking for more is retried sooner. */
const MAX_RETRY_WAIT_MS = 30_000;

const TLS_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "ERR_SSL_WRONG_VERSION_NUMBER",
]);

/** One sentence for a network failure. */
export function describeNetworkError(e: unknown, url: string): ExtctlError {
  if (e instanceof ExtctlError) return e;
  const code = errnoCode(e) ?? errnoCode((e as { cause?: unknown })?.cause);
  const message = messageOf(e);
  if (code && TLS_CODES.has(code)) {
    return new ExtctlError("tls", `TLS verification failed for ${url}: ${message} (${code})`, {
      hint: "pass the server's CA with --ca-cert FILE if you trust it",
      cause: e,
    });
  }
  const plain = url.startsWith("http://");
  const httpsUrl = plain ? `https://${url.slice("http://".length)}` : url;
  switch (code) {
    case "ETLSREPLY":
      // Not an outage: the same request fails the same way until the URL says https.
      return new ExtctlError("download", `${url}: the server answered in TLS, not plain HTTP`, {
        cause: e,
        hint: `that port speaks https: use ${httpsUrl}`,
      });
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return new ExtctlError("download", `cannot reach ${url}: no route to the host`, {
        cause: e,
        exitCode: EX_TEMPFAIL,
      });
    case "ECONNREFUSED":
      return new ExtctlError("download", `cannot connect to ${url}: connection refused`, {
        cause: e,
        exitCode: EX_TEMPFAIL,
      });
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new ExtctlError("download", `cannot resolve the host of ${url}`, {
        cause: e,
        exitCode: EX_TEMPFAIL,
      });
    case "ETIMEDOUT":
      return new ExtctlError("download", `timed out waiting for ${url}`, {
        cause: e,
        exitCode: EX_TEMPFAIL,
        hint: "the server stopped sending; try again",
      });
    case "ECONNRESET":
      // A TLS server that gets plain HTTP mostly closes without a word (Node's and OpenSSL's
      // do): an http:// URL that got no answer at all may well be aimed at an https port.
      if (plain && /before answering/.test(message))
        return new ExtctlError(
          "download",
          `${url}: the server closed the connection without answering`,
          {
            cause: e,
            hint: `if that port serves TLS, use ${httpsUrl}; otherwise check the server`,
          },
        );
      return new ExtctlError(
        "download",
        `the connection to ${url} was cut before the download finished`,
        { cause: e, hint: "try again" },
      );
    case "EPROXY":
      return new ExtctlError("download", message, {
        cause: e,
        // A proxy that cannot be reached is like a server that cannot: try later. One that
        // refuses the tunnel is its configuration, not an outage.
        ...(/^cannot reach the proxy/.test(message) ? { exitCode: EX_TEMPFAIL } : {}),
        hint: "check HTTPS_PROXY/HTTP_PROXY (and NO_PROXY for hosts to reach directly)",
      });
    case "HPE_HEADER_OVERFLOW":
      return new ExtctlError("download", `${url} sent oversized headers`, { cause: e });
    default:
      return new ExtctlError(
        "download",
        `download of ${url} failed: ${message}${code ? ` (${code})` : ""}`,
        { cause: e },
      );
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** GETs `url`, following redirects (never from https down to plain http). */
async function getFollowingRedirects(
  ctx: Context,
  url: string,
  request: Omit<BulkRequest, "url" | "what">,
): Promise<BulkResponse> {
  let target = new URL(url);
  let retries = 0;
  for (let redirects = 0; ; redirects++) {
    ctx.log.debug(`GET ${target.toString()}`);
    let response: BulkResponse;
    try {
      const proxy = proxyFor(target, ctx.env);
      if (proxy) ctx.log.debug(`through the proxy ${proxy.host}`);
      response = await bulkGet({ ...request, url: target, what: url, ...(proxy ? { proxy } : {}) });
    } catch (e) {
      throw describeNetworkError(e, url);
    }
    // 429 and 503 (and a gateway's 502/504) are worth another try, after Retry-After when given.
    if (RETRIED.has(response.statusCode) && retries < MAX_RETRIES) {
      const asked = headerText(response.headers["retry-after"]);
      const wait = Math.min(
        MAX_RETRY_WAIT_MS,
        (asked === undefined ? undefined : retryAfterMs(asked, Date.now())) ??
          RETRY_BASE_MS * 2 ** retries * (0.75 + Math.random() / 2),
      );
      await response.body.dump();
      ctx.log.info(
        `${url} answered HTTP ${response.statusCode}; trying again in ${(wait / 1000).toFixed(1)} s`,
      );
      retries++;
      redirects--;
      await new Promise((r) => setTimeout(r, wait));
      continue;
    }
    const location = response.headers.location;
    if (!REDIRECTS.has(response.statusCode) || typeof location !== "string") return response;
    await response.body.dump();
    if (redirects >= MAX_REDIRECTS) {
      throw new ExtctlError("download", `${url} redirected more than ${MAX_REDIRECTS} times`);
    }
    let next: URL;
    try {
      next = new URL(location, target);
    } catch {
      throw new ExtctlError("download", `${url} redirected to an invalid URL: ${location}`);
    }
    if (next.protocol !== "https:" && !(next.protocol === "http:" && target.protocol === "http:")) {
      throw new ExtctlError(
        "download",
        `${url} redirected to ${next.protocol}//${next.host}, away from https; refusing`,
      );
    }
    target = next;
  }
}

export const httpSource: Source = {
  schemes: ["http", "https"],
  async fetch(ctx: Context, request: HttpFetchRequest): Promise<FetchedImage[]> {
    const url = request.uri;
    const name = checkStoreName(request.name ?? httpFileName(url), url);
    const timeout = request.timeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    const ca = await trustedCAs(request.caCerts ?? [], ctx.env);
    // A cache that cannot be made (read-only /var) only means an interrupted run starts over.
    const keptAt = await partialPaths(ctx, url).catch(() => undefined);
    const kept = keptAt && (await findPartial(keptAt, url));
    const get = (headers: Record<string, string> = {}) =>
      getFollowingRedirects(ctx, url, {
        headers: { "user-agent": userAgent(), accept: "*/*", ...headers },
        ca,
        timeoutMs: timeout,
      });
    let response = await get(
      kept ? { range: `bytes=${kept.have}-`, "if-range": kept.validator } : {},
    );
    let continues: PartialDownload | undefined;
    if (kept) {
      if (response.statusCode === 206 && rangeOf(response.headers, kept.have, kept.size)) {
        continues = kept;
        ctx.log.info(
          `${url}: continuing the download an interrupted run kept (${humanBytes(kept.have)} of ${humanBytes(kept.size)})`,
        );
      } else {
        // The file changed (If-Range answered 200) or the server cannot continue it: start over.
        await dropPartial(kept);
        if (response.statusCode === 206 || response.statusCode === 416) {
          await response.body.dump();
          response = await get();
        }
      }
    }
    if (response.statusCode >= 300) {
      await response.body.dump();
      throw new ExtctlError(
        "download",
        response.statusCode >= 400
          ? `${url} answered HTTP ${response.statusCode}${statusText(response.statusCode)}`
          : `${url} answered HTTP ${response.statusCode} without a Location to follow`,
        response.statusCode === 404
          ? { hint: "check the URL" }
          : unavailable(response.statusCode)
            ? { exitCode: EX_TEMPFAIL, hint: "the server is down or busy; try later" }
            : {},
      );
    }
    const lengthHeader = response.headers["content-length"];
    const expectedSize = continues
      ? continues.size
      : typeof lengthHeader === "string" && /^\d+$/.test(lengthHeader)
        ? Number(lengthHeader)
        : undefined;
    const progress = ctx.progress(`downloading ${name}`, expectedSize);
    // Resuming is safe only when the rest is known to be of the same file: a strong ETag or a
    // Last-Modified date for If-Range, or the --sha256 that checks the whole at the end.
    const etag = headerText(response.headers.etag);
    const validator =
      continues?.validator ??
      (etag && !etag.startsWith("W/") ? etag : headerText(response.headers["last-modified"]));
    const resume = async (offset: number, cause: unknown) => {
      if (expectedSize === undefined || (validator === undefined && request.sha256 === undefined))
        return undefined;
      ctx.log.info(
        `${url}: the transfer was cut after ${offset} of ${expectedSize} bytes (${describeNetworkError(cause ?? new Error("it ended early"), url).message}); resuming`,
      );
      const rest = await getFollowingRedirects(ctx, url, {
        headers: {
          "user-agent": userAgent(),
          accept: "*/*",
          range: `bytes=${offset}-`,
          ...(validator ? { "if-range": validator } : {}),
        },
        ca,
        timeoutMs: timeout,
      });
      if (rest.statusCode !== 206 || !rangeOf(rest.headers, offset, expectedSize)) {
        // A 200 (the file changed, or no ranges) cannot continue what is in the store's temp.
        await rest.body.dump();
        return undefined;
      }
      return rest.body;
    };
    // Interrupted, the bytes so far wait in PARTIAL_DIR for the next run, when it can ask for
    // the rest of the same file.
    const keepOnInterrupt =
      keptAt !== undefined && expectedSize !== undefined && validator !== undefined
        ? (temp: string, have: number) =>
            have > 0 && have < expectedSize
              ? keepPartialSync(keptAt, temp, { url, validator, size: expectedSize }, have)
              : dropPartialSync(keptAt)
        : undefined;
    const room = await storeRoom(request.storeDir, request.maxBytes);
    const image = await streamToStore(response.body, {
      resume,
      ...(continues ? { continues: { partial: continues } } : {}),
      ...(keepOnInterrupt ? { keepOnInterrupt } : {}),
      storeDir: request.storeDir,
      name,
      progress,
      from: url,
      describeReadError: (e) => describeNetworkError(e, url),
      ...(expectedSize === undefined ? {} : { expectedSize }),
      maxSize: room.limit,
      room,
      ...(request.sha256 === undefined ? {} : { sha256: request.sha256 }),
      mergeTarget: {
        kind: request.kind,
        root: ctx.root,
        ...(request.mergeName === undefined
          ? { warn: (message: string) => ctx.log.warn(message) }
          : { as: request.mergeName }),
      },
    });
    return [image];
  },
};

export interface HttpBytesRequest {
  /** Extra CA certificate files (PEM) trusted besides the system ones. */
  caCerts?: readonly string[];
  /** Connect, header and low-speed limit; default 60 s. */
  timeoutMs?: number;
  /** The most bytes accepted; a longer answer is an error. */
  maxBytes: number;
  /** What is fetched, for messages ("the catalog"). */
  what?: string;
  /** Statuses that mean "absent" (undefined is returned); default 404 and 410. */
  absent?: readonly number[];
}

/** What a conditional GET of a small file found. */
export type ConditionalBytes =
  | { status: "absent" }
  | { status: "not-modified" }
  | { status: "ok"; bytes: Buffer; etag?: string; lastModified?: string };

/** The validators of a copy held from before, sent as If-None-Match and If-Modified-Since. */
export interface Validators {
  etag?: string;
  lastModified?: string;
}

/**
 * GETs a small file whole (a catalog, its signature) with the same TLS, proxies, redirects and
 * retries as downloads, bounded by `maxBytes`. Undefined when the server answers 404 or 410
 * (or `absent`), so a caller can tell "absent" from "unreachable".
 */
export async function httpGetBytes(
  ctx: Context,
  url: string,
  request: HttpBytesRequest,
): Promise<Buffer | undefined> {
  const got = await httpGetConditional(ctx, url, request);
  return got.status === "ok" ? got.bytes : undefined;
}

/**
 * httpGetBytes with the validators of a copy held from before: a server that has nothing newer
 * answers 304 and sends no body ("not-modified"); otherwise the bytes and their new validators.
 */
export async function httpGetConditional(
  ctx: Context,
  url: string,
  request: HttpBytesRequest,
  held: Validators = {},
): Promise<ConditionalBytes> {
  const what = request.what ?? url;
  const ca = await trustedCAs(request.caCerts ?? [], ctx.env);
  const conditional = held.etag !== undefined || held.lastModified !== undefined;
  const response = await getFollowingRedirects(ctx, url, {
    headers: {
      "user-agent": userAgent(),
      accept: "*/*",
      ...(held.etag === undefined ? {} : { "if-none-match": held.etag }),
      ...(held.lastModified === undefined ? {} : { "if-modified-since": held.lastModified }),
    },
    ca,
    timeoutMs: request.timeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
  });
  if ((request.absent ?? [404, 410]).includes(response.statusCode)) {
    await response.body.dump();
    return { status: "absent" };
  }
  // A 304 means something only when extctl asked conditionally; unasked, it is a broken server.
  if (response.statusCode === 304 && conditional) {
    await response.body.dump();
    return { status: "not-modified" };
  }
  if (response.statusCode !== 200) {
    await response.body.dump();
    throw new ExtctlError(
      "download",
      `${url} answered HTTP ${response.statusCode}${statusText(response.statusCode)}`,
      unavailable(response.statusCode)
        ? { exitCode: EX_TEMPFAIL, hint: "the server is down or busy; try later" }
        : {},
    );
  }
  const tooLarge = () =>
    new ExtctlError(
      "download",
      `${what} at ${url} is larger than ${request.maxBytes} bytes; refusing it`,
    );
  const length = headerText(response.headers["content-length"]);
  if (length !== undefined && /^\d+$/.test(length) && Number(length) > request.maxBytes) {
    await response.body.dump();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    await response.body.pipe((view) => {
      total += view.length;
      if (total > request.maxBytes) return Promise.reject(tooLarge());
      chunks.push(Buffer.from(view));
      return undefined;
    });
  } catch (e) {
    throw describeNetworkError(e, url);
  }
  const etag = headerText(response.headers.etag);
  const lastModified = headerText(response.headers["last-modified"]);
  return {
    status: "ok",
    bytes: Buffer.concat(chunks, total),
    ...(etag === undefined ? {} : { etag }),
    ...(lastModified === undefined ? {} : { lastModified }),
  };
}

/** A status that says the server cannot answer now (5xx, 429), after the retries: try later. */
function unavailable(status: number): boolean {
  return status >= 500 || status === 429;
}

/** Whether a 206's Content-Range is the rest of the file from `offset`, of `size` bytes. */
function rangeOf(
  headers: Record<string, string | string[] | undefined>,
  offset: number,
  size: number,
): boolean {
  const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headerText(headers["content-range"]) ?? "");
  return range !== null && Number(range[1]) === offset && Number(range[3]) === size;
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function statusText(code: number): string {
  const texts: Record<number, string> = {
    400: " Bad Request",
    401: " Unauthorized",
    403: " Forbidden",
    404: " Not Found",
    410: " Gone",
    429: " Too Many Requests",
    500: " Internal Server Error",
    502: " Bad Gateway",
    503: " Service Unavailable",
    504: " Gateway Timeout",
  };
  return texts[code] ?? "";
}
