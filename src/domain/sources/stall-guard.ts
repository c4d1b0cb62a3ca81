// A low-speed limit for downloads, like curl's --speed-limit/--speed-time: a source that sends
// fewer than `minBytes` within `timeoutMs` (a silent server, or one that drips a byte at a
// time) is given up on instead of hanging extctl forever.
import { EX_TEMPFAIL, ExtctlError } from "../../util/errors.js";

export interface StallGuardOptions {
  /** Give up when fewer than minBytes arrive within this many milliseconds. */
  timeoutMs: number;
  /** Default 1 KiB. */
  minBytes?: number;
  /** What is being downloaded, for the message. */
  what: string;
  /** Frees the source (destroys the socket) when the guard gives up. */
  abort?: () => void;
}

export const DEFAULT_STALL_TIMEOUT_MS = 60_000;

/** What a download that fell under the low-speed limit fails with. */
export function stallError(what: string, minBytes: number, timeoutMs: number): ExtctlError {
  const seconds = Number((timeoutMs / 1000).toFixed(1));
  return new ExtctlError(
    "download",
    `${what} is too slow: less than ${minBytes} bytes in ${seconds} s; giving up`,
    { hint: "the server stalled; try again, or raise --timeout", exitCode: EX_TEMPFAIL },
  );
}

export async function* guardStall(
  source: AsyncIterable<Buffer>,
  options: StallGuardOptions,
): AsyncGenerator<Buffer> {
  const minBytes = options.minBytes ?? 1024;
  const iterator = source[Symbol.asyncIterator]();
  let markTime = Date.now();
  let markBytes = 0;
  let stalled: ((e: Error) => void) | undefined;
  const timer = setInterval(
    () => {
      if (Date.now() - markTime <= options.timeoutMs) return;
      stalled?.(stallError(options.what, minBytes, options.timeoutMs));
    },
    Math.max(50, Math.min(1000, options.timeoutMs / 4)),
  );
  try {
    for (;;) {
      const next = await new Promise<IteratorResult<Buffer>>((resolve, reject) => {
        stalled = reject;
        iterator.next().then(resolve, reject);
      });
      if (next.done) return;
      markBytes += next.value.length;
      if (markBytes >= minBytes) {
        markTime = Date.now();
        markBytes = 0;
      }
      yield next.value;
    }
  } catch (e) {
    options.abort?.();
    throw e;
  } finally {
    clearInterval(timer);
  }
}
