// withLock: an operation that calls another under the lock (apply calls installByName and
// upgrade) with the locked context takes the root's lock once; separate runs still wait for each
// other, also when they share one context.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createContext } from "../../../src/util/context.js";
import { withLock } from "../../../src/operations/guard.js";
import { tempRoot } from "../../helpers/tmp.js";

test("a nested withLock given the locked context runs at once", async (t) => {
  const ctx = createContext({ root: await tempRoot(t) });
  const inner = await Promise.race([
    withLock(ctx, (locked) => withLock(locked, () => Promise.resolve("inner"))),
    new Promise((r) => setTimeout(() => r("deadlock"), 5000).unref()),
  ]);
  assert.equal(inner, "inner");
});

test("two separate runs on one root do not interleave", async (t) => {
  const ctx = createContext({ root: await tempRoot(t) });
  const order: string[] = [];
  const run = (name: string) =>
    withLock(ctx, async () => {
      order.push(`${name} in`);
      await new Promise((r) => setTimeout(r, 50));
      order.push(`${name} out`);
    });
  await Promise.all([run("a"), run("b")]);
  assert.ok(
    (order[0] === "a in" && order[1] === "a out") || (order[0] === "b in" && order[1] === "b out"),
    order.join(", "),
  );
});
