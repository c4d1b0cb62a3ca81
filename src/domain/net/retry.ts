// When to try an HTTP request again: what the server asks for in Retry-After.

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
