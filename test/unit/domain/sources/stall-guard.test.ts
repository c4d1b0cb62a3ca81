// The low-speed limit: a silent source and a dripping source are given up on within the limit;
// a steady one passes through untouched.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { guardStall } from "../../../../src/domain/sources/stall-guard.js";

async function drain(source: AsyncIterable<Buffer>): Promise<number> {
  let n = 0;
  for await (const chunk of source) n += chunk.length;
  return n;
}

test("a source that sends nothing is given up on, and aborted", async () => {
  let aborted = false;
  const silent = (async function* () {
    await sleep(10_000);
    yield Buffer.alloc(1);
  })();
  const started = Date.now();
  await assert.rejects(
    drain(
      guardStall(silent, {
        timeoutMs: 300,
        what: "https://x/a.raw",
        abort: () => (aborted = true),
      }),
    ),
    /https:\/\/x\/a\.raw is too slow: less than 1024 bytes in 0\.3 s; giving up/,
  );
  assert.ok(Date.now() - started < 2000);
  assert.equal(aborted, true);
});

test("a source that drips a byte at a time is given up on", async () => {
  const drip = (async function* () {
    for (let i = 0; i < 1000; i++) {
      await sleep(20);
      yield Buffer.alloc(1);
    }
  })();
  await assert.rejects(drain(guardStall(drip, { timeoutMs: 300, what: "x" })), /giving up/);
});

test("a steady source passes through whole", async () => {
  const steady = (async function* () {
    for (let i = 0; i < 20; i++) {
      await sleep(20);
      yield Buffer.alloc(4096);
    }
  })();
  assert.equal(await drain(guardStall(steady, { timeoutMs: 300, what: "x" })), 20 * 4096);
});
