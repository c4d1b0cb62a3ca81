// Bounded concurrency for many small filesystem calls (lstat, copy, chmod of thousands of files),
// where the cost is round trips to the thread pool, not bandwidth.

/** Runs `fn` over `items` with at most `limit` calls in flight; stops at the first failure. */
export async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Like inParallel, but keeps each result at its item's index. */
export async function mapInParallel<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  const indexed = items.map((item, i) => [item, i] as const);
  await inParallel(indexed, limit, async ([item, i]) => {
    out[i] = await fn(item);
  });
  return out;
}
