// Proxies from the environment, read the way curl, skopeo and containerd read them: https_proxy
// or HTTPS_PROXY for https URLs, http_proxy (lower case only: HTTP_PROXY can be set by a CGI
// request header, "httpoxy") for http URLs, ALL_PROXY for both; no_proxy/NO_PROXY lists hosts
// that are reached directly (names match themselves and their subdomains, a leading dot is
// optional, "*" means every host, IP addresses and IPv4 CIDR ranges match addresses, HOST:PORT
// only that port). Edge sites often sit behind one.
import net from "node:net";
import { ExtctlError } from "../../util/errors.js";

export interface ProxySettings {
  /** For https URLs, as a URL string with a scheme. */
  httpsProxy?: string;
  /** For http URLs. */
  httpProxy?: string;
  noProxy: string;
}

/** The proxy variables of `env`, each proxy given a scheme (curl reads "host:port" as http). */
export function proxySettings(env: NodeJS.ProcessEnv): ProxySettings {
  const pick = (...values: (string | undefined)[]) =>
    values.map((v) => v?.trim()).find((v) => v !== undefined && v !== "");
  const withScheme = (p: string | undefined) =>
    p === undefined ? undefined : /^[a-z][a-z0-9+.-]*:\/\//i.test(p) ? p : `http://${p}`;
  const httpsProxy = withScheme(
    pick(env.https_proxy, env.HTTPS_PROXY, env.all_proxy, env.ALL_PROXY),
  );
  const httpProxy = withScheme(pick(env.http_proxy, env.all_proxy, env.ALL_PROXY));
  return {
    ...(httpsProxy ? { httpsProxy } : {}),
    ...(httpProxy ? { httpProxy } : {}),
    noProxy: env.no_proxy ?? env.NO_PROXY ?? "",
  };
}

/** The proxy to reach `url` through, or undefined to connect directly. */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv): URL | undefined {
  const settings = proxySettings(env);
  const secure = url.protocol === "https:";
  const raw = secure ? settings.httpsProxy : settings.httpProxy;
  if (!raw) return undefined;
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  const port = Number(url.port) || (secure ? 443 : 80);
  if (bypassed(host, port, settings.noProxy)) return undefined;
  return parseProxy(raw);
}

function parseProxy(raw: string): URL {
  let proxy: URL;
  try {
    proxy = new URL(raw);
  } catch {
    throw new ExtctlError("config", `the proxy ${JSON.stringify(raw)} is not a URL`, {
      hint: "set HTTPS_PROXY/HTTP_PROXY to http://HOST:PORT",
    });
  }
  if (proxy.protocol !== "http:")
    throw new ExtctlError(
      "config",
      `the proxy ${proxy.protocol}//${proxy.host} is not supported: extctl speaks to http:// proxies (CONNECT for https)`,
    );
  return proxy;
}

/** Whether no_proxy says `host` (a name or an address) on `port` is reached directly. */
export function bypassed(host: string, port: number, noProxy: string): boolean {
  for (const entry of noProxy.split(/[\s,]+/).filter(Boolean)) {
    const item = entry.toLowerCase();
    if (item === "*") return true;
    let pattern = item;
    let onlyPort: number | undefined;
    const portMatch = /^(.*[^:]):(\d+)$/.exec(item);
    if (portMatch && !item.includes("/") && !(net.isIPv6(item) && !item.startsWith("["))) {
      pattern = portMatch[1] as string;
      onlyPort = Number(portMatch[2]);
    }
    if (onlyPort !== undefined && onlyPort !== port) continue;
    pattern = pattern.replace(/^\[(.*)\]$/, "$1");
    if (pattern.includes("/")) {
      if (net.isIPv4(host) && inCidr(host, pattern)) return true;
      continue;
    }
    if (net.isIP(pattern) || net.isIP(host)) {
      if (pattern === host) return true;
      continue;
    }
    const suffix = pattern.replace(/^\*?\./, "");
    if (host === suffix || host.endsWith(`.${suffix}`)) return true;
  }
  return false;
}

function inCidr(address: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split("/");
  const bits = Number(bitsText);
  if (!base || !net.isIPv4(base) || !Number.isInteger(bits) || bits < 0 || bits > 32) return false;
  const toInt = (a: string) => a.split(".").reduce((n, part) => (n << 8) + Number(part), 0) >>> 0;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (toInt(address) & mask) === (toInt(base) & mask);
}

/** The Proxy-Authorization header for a proxy URL with user:password, if it has one. */
export function proxyAuthorization(proxy: URL): string | undefined {
  if (!proxy.username) return undefined;
  const user = decodeURIComponent(proxy.username);
  const pass = decodeURIComponent(proxy.password);
  return `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
}
