// http: and https: sources on undici (loaded only when a download happens): TLS verified
// against the system CAs plus --ca-cert, redirects followed a bounded number of times, timeouts,
// and every failure said in one sentence with nothing left in the store.
import { readFile } from "node:fs/promises";
import { rootCertificates } from "node:tls";
import type { Context } from "../../util/context.js";
import { ExtctlError, errnoCode } from "../../util/errors.js";
import { checkStoreName, httpFileName } from "./uri.js";
import { streamToStore } from "./stream-to-store.js";
import { DEFAULT_STALL_TIMEOUT_MS, guardStall } from "./stall-guard.js";
import type { FetchRequest, FetchedImage, Source } from "./types.js";

export interface HttpFetchRequest extends FetchRequest {
  name?: string;
  /** Milliseconds without progress before giving up. */
  timeoutMs?: number;
}

const SYSTEM_CA_FILES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];
const MAX_REDIRECTS = 10;

/**
 * The distribution's bundle (Node's bundled roots when there is none) and the user's extra CAs.
 * Not both bundles: they hold the same Mozilla roots, and parsing each root twice cost ~20 ms
 * of every https download's TLS set-up.
 */
export async function trustedCAs(
  extra: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<string[]> {
  const cas: string[] = [];
  for (const file of SYSTEM_CA_FILES) {
    const pem = await readFile(file, "utf8").catch(() => undefined);
    if (pem) {
      cas.push(pem);
      break;
    }
  }
  if (cas.length === 0) cas.push(...rootCertificates);
  const files = [...extra];
  if (env.NODE_EXTRA_CA_CERTS) files.push(env.NODE_EXTRA_CA_CERTS);
  for (const file of files) {
    try {
      cas.push(await readFile(file, "utf8"));
    } catch (e) {
      throw new ExtctlError(
        "tls",
        `cannot read the CA certificate ${file}: ${errnoCode(e) ?? (e as Error).message}`,
      );
    }
  }
  return cas;
}

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
  const message = e instanceof Error ? e.message : String(e);
  if (code && TLS_CODES.has(code)) {
    return new ExtctlError("tls", `TLS verification failed for ${url}: ${message} (${code})`, {
      hint: "pass the server's CA with --ca-cert FILE if you trust it",
      cause: e,
    });
  }
  switch (code) {
    case "ECONNREFUSED":
      return new ExtctlError("download", `cannot connect to ${url}: connection refused`, {
        cause: e,
      });
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new ExtctlError("download", `cannot resolve the host of ${url}`, { cause: e });
    case "UND_ERR_CONNECT_TIMEOUT":
    case "UND_ERR_HEADERS_TIMEOUT":
    case "UND_ERR_BODY_TIMEOUT":
    case "ETIMEDOUT":
      return new ExtctlError("download", `timed out waiting for ${url}`, {
        cause: e,
        hint: "the server stopped sending; try again",
      });
    case "UND_ERR_SOCKET":
    case "ECONNRESET":
    case "UND_ERR_RES_CONTENT_LENGTH_MISMATCH":
      return new ExtctlError(
        "download",
        `the connection to ${url} was cut before the download finished`,
        {
          cause: e,
          hint: "try again",
        },
      );
    case "UND_ERR_HEADERS_OVERFLOW":
      return new ExtctlError("download", `${url} sent oversized headers`, { cause: e });
    default:
      if (/redirect/i.test(message)) {
        return new ExtctlError("download", `${url} redirected more than ${MAX_REDIRECTS} times`, {
          cause: e,
        });
      }
      return new ExtctlError(
        "download",
        `download of ${url} failed: ${message}${code ? ` (${code})` : ""}`,
        { cause: e },
      );
  }
}

export const httpSource: Source = {
  schemes: ["http", "https"],
  async fetch(ctx: Context, request: HttpFetchRequest): Promise<FetchedImage[]> {
    const url = request.uri;
    const name = checkStoreName(request.name ?? httpFileName(url), url);
    const { Agent, interceptors, request: undiciRequest } = await import("undici");
    const timeout = request.timeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    const agent = new Agent({
      connect: {
        ca: await trustedCAs(request.caCerts ?? [], ctx.env),
        rejectUnauthorized: true,
        timeout,
      },
      headersTimeout: timeout,
      bodyTimeout: timeout,
      maxHeaderSize: 64 * 1024,
    });
    const dispatcher = agent.compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTS }));
    try {
      ctx.log.debug(`GET ${url}`);
      let response;
      try {
        response = await undiciRequest(url, {
          dispatcher,
          method: "GET",
          headers: { "user-agent": "extctl", accept: "*/*" },
        });
      } catch (e) {
        throw describeNetworkError(e, url);
      }
      if (response.statusCode >= 400) {
        await response.body.dump().catch(() => {});
        throw new ExtctlError(
          "download",
          `${url} answered HTTP ${response.statusCode}${statusText(response.statusCode)}`,
          {
            hint: response.statusCode === 404 ? "check the URL" : undefined,
          },
        );
      }
      if (response.statusCode >= 300) {
        await response.body.dump().catch(() => {});
        // undici hands back the last 3xx once maxRedirections is used up (or Location is missing).
        throw new ExtctlError(
          "download",
          `${url} kept redirecting (HTTP ${response.statusCode}) after ${MAX_REDIRECTS} redirects, or sent no Location`,
        );
      }
      const lengthHeader = response.headers["content-length"];
      const expectedSize =
        typeof lengthHeader === "string" && /^\d+$/.test(lengthHeader)
          ? Number(lengthHeader)
          : undefined;
      const progress = ctx.progress(`downloading ${name}`, expectedSize);
      try {
        const body = response.body;
        const guarded = guardStall(body, {
          timeoutMs: timeout,
          what: url,
          abort: () => body.destroy(),
        });
        const image = await streamToStore(guarded, {
          storeDir: request.storeDir,
          name,
          progress,
          from: url,
          describeReadError: (e) => describeNetworkError(e, url),
          ...(expectedSize === undefined ? {} : { expectedSize }),
          ...(request.sha256 === undefined ? {} : { sha256: request.sha256 }),
        });
        return [image];
      } catch (e) {
        throw describeNetworkError(e, url);
      }
    } finally {
      await agent.close().catch(() => {});
    }
  },
};

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
