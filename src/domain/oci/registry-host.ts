// One identity for a registry host[:port], as the connection would read it: what registries.conf
// (blocked, insecure, mirrors), credentials, --insecure-registry and references are compared by.
import { ExtctlError } from "../../util/errors.js";

/** The port the registry API is reached on when none is written (https). */
const DEFAULT_PORT = "443";

// What may be written at all: a bracketed IPv6 address, or dot-separated labels of letters, digits
// and dashes (names, and IPv4 in any form inet_aton takes: 127.1, 0x7f000001, 2130706433, 0177...),
// then an optional port of digits.
const SHAPE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)(?::(\d{1,10}))?$/;
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
const MAPPED = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/;

/**
 * The canonical form of a registry `host[:port]`, or why there is none: the host lower-cased,
 * IPv4 in dotted decimal (parsed as WHATWG URL and inet_aton parse it: 127.1, 2130706433,
 * 0x7f000001 and 127.000.000.001 are all 127.0.0.1), IPv6 compressed, IPv4-mapped IPv6
 * ([::ffff:127.0.0.1]) as the IPv4 address it reaches, and the port without leading zeros,
 * dropped when it is 443 (https's, where the registry API lives).
 */
export function canonicalRegistryHost(
  hostPort: string,
): { host: string; problem?: never } | { host?: never; problem: string } {
  const shape = SHAPE.exec(hostPort);
  if (!shape) return { problem: "is not a host name or address with an optional :PORT" };
  const hostPart = shape[1] as string;
  if (!hostPart.startsWith("[") && !hostPart.split(".").every((l) => LABEL.test(l)))
    return { problem: "has a label that is empty or starts or ends with a dash" };
  let url: URL;
  try {
    // The connection parses the host this way (undici and Node go through WHATWG URL).
    url = new URL(`https://${hostPort}/`);
  } catch {
    return {
      problem: /^[0-9.xXa-fA-F]+$/.test(hostPart)
        ? "looks like an IPv4 address but is not one (each part at most 255, the last at most what is left of 32 bits)"
        : "is not a valid host (a port above 65535, or an invalid address?)",
    };
  }
  let host = url.hostname;
  const mapped = MAPPED.exec(host);
  if (mapped) {
    const hi = parseInt(mapped[1] as string, 16);
    const lo = parseInt(mapped[2] as string, 16);
    host = [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join(".");
  }
  const port = url.port === "" || url.port === DEFAULT_PORT ? "" : `:${url.port}`;
  return { host: `${host}${port}` };
}

/** canonicalRegistryHost, or an error naming `what` the host came from. */
export function canonicalRegistry(hostPort: string, what: string): string {
  const canonical = canonicalRegistryHost(hostPort);
  if (canonical.problem !== undefined) {
    throw new ExtctlError(
      "invalid-uri",
      `the registry "${hostPort}" in ${what} ${canonical.problem}`,
      {
        hint: "write the registry as HOST[:PORT]: a name, a dotted IPv4 address or a bracketed IPv6 address",
      },
    );
  }
  return canonical.host;
}

/**
 * The canonical form of `host[:port][/path]` (a registries.conf prefix or location, an auth file
 * key): the host part canonical, the path as written. Undefined when the host has none.
 */
export function canonicalRegistryPath(value: string): string | undefined {
  const slash = value.indexOf("/");
  const host = canonicalRegistryHost(slash < 0 ? value : value.slice(0, slash)).host;
  if (host === undefined) return undefined;
  return slash < 0 ? host : host + value.slice(slash);
}
