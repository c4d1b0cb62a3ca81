// The one policy for following and retrying HTTP requests, for https: and oci: alike: how many
// redirects are followed (never from https down to http: each client checks the scheme), and
// what a server asks for in Retry-After.

/** Redirects followed before giving up (curl's default is 50; registries use one or two). */
export const MAX_REDIRECTS = 10;

/**
 * Retry-After in both of RFC 9110's forms: delay-seconds or an HTTP-date; undefined when it is
 * neither (the usual backoff applies).
 */
export function retryAfterMs(value: string, now: number): number | undefined {
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (!/[a-z]/i.test(text) || Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
