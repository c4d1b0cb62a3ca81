import assert from "node:assert/strict";
import { test } from "node:test";
import { retryAfterMs } from "../../../../src/domain/net/retry.js";

test("Retry-After is read as delay-seconds and as an HTTP-date", () => {
  const now = Date.parse("Wed, 02 Dec 2026 06:00:00 GMT");
  assert.equal(retryAfterMs("3", now), 3000);
  assert.equal(retryAfterMs(" 0 ", now), 0);
  assert.equal(retryAfterMs("Wed, 02 Dec 2026 06:00:05 GMT", now), 5000);
  assert.equal(retryAfterMs("Wed, 02 Dec 2026 05:59:00 GMT", now), 0, "a date in the past: now");
  assert.equal(retryAfterMs("soon", now), undefined);
  assert.equal(retryAfterMs("-1", now), undefined);
  assert.equal(retryAfterMs("1.5", now), undefined);
});
