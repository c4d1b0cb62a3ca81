// apply() end to end on temp roots with file: sources (no network, refresh off): a fresh node, a
// second run that does nothing, changed profiles, a changed source that keeps its profiles,
// prune, --dry-run, now: with the boot sentinel, and a failed step that changes nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, readdir, readlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { createContext } from "../../../../src/util/context.js";
import { MemoryLogger } from "../../../../src/util/log.js";
import { apply } from "../../../../src/operations/apply.js";
import { tempDir, tempRoot } from "../../../helpers/tmp.js";
import { stubImage, stubLabel } from "../../../helpers/stub-image.js";

const STORE = "var/lib/kairos/extensions";

async function setup(t: Parameters<typeof tempRoot>[0]) {
  const root = await tempRoot(t);
  const src = await tempDir(t, "extctl-src-");
  for (const n of ["a", "b", "c"])
    await writeFile(path.join(src, `${n}.raw`), stubImage(`image ${n} v1`));
  const ctx = createContext({ root, log: new MemoryLogger() });
  const run = (text: string, dryRun = false) =>
    apply(ctx, { file: "node.yaml", text, refresh: "none", ...(dryRun ? { dryRun } : {}) });
  return { root, src, ctx, run };
}

async function links(root: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const p of ["active", "passive", "recovery", "common"]) {
    const names = await readdir(path.join(root, STORE, p)).catch(() => [] as string[]);
    if (names.length) out[p] = names.sort();
  }
  const run = await readdir(path.join(root, "run/extensions")).catch(() => [] as string[]);
  if (run.length) out.run = run.sort();
  return out;
}

const spec = (src: string, extra = "") => `extensions:
  sysext:
    - source: file://${src}/a.raw
      profiles: [active, passive]
    - source: file://${src}/b.raw
      profiles: [common]
${extra}`;

test("a fresh node gets every image and link; a second apply does nothing", async (t) => {
  const { root, src, run } = await setup(t);
  const first = await run(spec(src));
  assert.deepEqual(
    first.steps.map((s) => s.step),
    ["install", "install", "link", "link", "link"],
  );
  assert.deepEqual(await links(root), {
    active: ["a.raw"],
    passive: ["a.raw"],
    common: ["b.raw"],
  });
  assert.equal(stubLabel(await readFile(path.join(root, STORE, "a.raw"))), "image a v1");
  const second = await run(spec(src));
  assert.deepEqual(second.steps, []);
  assert.equal(second.changed, false);
});

test("--dry-run prints the plan and changes nothing", async (t) => {
  const { root, src, run } = await setup(t);
  const plan = await run(spec(src), true);
  assert.equal(plan.dryRun, true);
  assert.deepEqual(
    plan.steps.map((s) => s.description),
    [
      `install sysext a.raw from file://${src}/a.raw`,
      `install sysext b.raw from file://${src}/b.raw`,
      "enable sysext a.raw in active",
      "enable sysext a.raw in passive",
      "enable sysext b.raw in common",
    ],
  );
  assert.deepEqual(await readdir(root).then((d) => d.includes("var")), false);
});

test("changed profiles link and unlink exactly the difference", async (t) => {
  const { root, src, run } = await setup(t);
  await run(spec(src));
  const changed = spec(src).replace("[active, passive]", "[passive, recovery]");
  const r = await run(changed);
  assert.deepEqual(
    r.steps.map((s) => s.description),
    ["enable sysext a.raw in recovery", "disable sysext a.raw in active"],
  );
  assert.deepEqual(await links(root), {
    passive: ["a.raw"],
    recovery: ["a.raw"],
    common: ["b.raw"],
  });
});

test("a changed source replaces the image and keeps its profiles", async (t) => {
  const { root, src, run } = await setup(t);
  await run(spec(src));
  await mkdir(path.join(src, "v2"));
  await writeFile(path.join(src, "v2/a.raw"), stubImage("image a v2"));
  const r = await run(spec(src).replace(`${src}/a.raw`, `${src}/v2/a.raw`));
  assert.deepEqual(
    r.steps.map((s) => s.step),
    ["install"],
  );
  assert.match(r.steps[0]?.description ?? "", /installed sysext a\.raw/);
  assert.equal(stubLabel(await readFile(path.join(root, STORE, "a.raw"))), "image a v2");
  assert.deepEqual((await links(root)).active, ["a.raw"]);
  assert.deepEqual((await run(spec(src).replace(`${src}/a.raw`, `${src}/v2/a.raw`))).steps, []);
});

test("prune removes store images the file does not list, with their links", async (t) => {
  const { root, src, run } = await setup(t);
  await run(spec(src) + `    - source: file://${src}/c.raw\n      profiles: [active]\n`);
  const r = await run(spec(src, "  prune: true\n"));
  assert.deepEqual(
    r.steps.map((s) => s.description),
    ["remove sysext c.raw (not listed; prune)"],
  );
  assert.deepEqual(
    (await readdir(path.join(root, STORE))).filter((n) => n.endsWith(".raw")).sort(),
    ["a.raw", "b.raw"],
  );
  assert.deepEqual((await links(root)).active, ["a.raw"]);
  // Without prune, an unlisted image stays.
  await run(spec(src) + `    - source: file://${src}/c.raw\n      profiles: [active]\n`);
  assert.deepEqual(
    (await run(spec(src))).steps.map((s) => s.step),
    [],
  );
});

test("now: links into /run when booted in the profile; taking the profile away unlinks", async (t) => {
  const { root, src, run } = await setup(t);
  await mkdir(path.join(root, "run/cos"), { recursive: true });
  await writeFile(path.join(root, "run/cos/active_mode"), "");
  const text = `sysext:\n  - source: file://${src}/a.raw\n    profiles: [active]\n    now: true\n`;
  const r = await run(text);
  assert.deepEqual(
    r.steps.map((s) => s.step),
    ["install", "link", "link-runtime", "refresh"],
  );
  assert.equal(
    await readlink(path.join(root, "run/extensions/a.raw")),
    "../../var/lib/kairos/extensions/active/a.raw",
  );
  assert.deepEqual((await run(text)).steps, []);
  const r2 = await run(text.replace("[active]", "[passive]"));
  assert.deepEqual(
    r2.steps.map((s) => s.step),
    ["link", "unlink", "unlink-runtime", "refresh"],
  );
  assert.equal((await links(root)).run, undefined);
});

test("a failed install names the step and leaves the node as it was", async (t) => {
  const { root, src, run } = await setup(t);
  await run(spec(src));
  const before = await links(root);
  const stateBefore = await readFile(path.join(root, "var/lib/kairos/extctl-apply.json"), "utf8");
  const bad = spec(src).replace(`${src}/a.raw`, `${src}/missing/a.raw`);
  await assert.rejects(run(bad), (e: Error) => {
    assert.match(
      e.message,
      /^step 1 of \d+ \(install sysext a\.raw from file:.*missing\/a\.raw \(replaces the image from .*\)\) failed: /,
    );
    return true;
  });
  assert.deepEqual(await links(root), before);
  assert.equal(stubLabel(await readFile(path.join(root, STORE, "a.raw"))), "image a v1");
  assert.equal(
    await readFile(path.join(root, "var/lib/kairos/extctl-apply.json"), "utf8"),
    stateBefore,
  );
});

test("two entries giving the same image are a config error", async (t) => {
  const { src, run } = await setup(t);
  const text = `sysext:\n  - source: file://${src}/a.raw\n    profiles: [active]\n  - source: file://${src}/v2/a.raw\n    profiles: [common]\n`;
  await assert.rejects(
    run(text),
    /sysext\[1\] \(line 4\) and sysext\[0\] \(line 2\) both give the image a\.raw/,
  );
});

test("policy: signed refuses an unsigned image at its link step, naming it; nothing is linked", async (t) => {
  const { root, src, run } = await setup(t);
  await assert.rejects(
    run(
      `extensions:\n  policy: signed\n  sysext:\n    - source: file://${src}/a.raw\n      profiles: [active]\n`,
    ),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, "policy");
      assert.match(
        e.message,
        /^step \d+ of \d+ \(enable sysext a\.raw in active\) failed: a\.raw is refused: /,
      );
      return true;
    },
  );
  assert.deepEqual(await links(root), {});
  // The same image passes under the open policy.
  await run(
    `extensions:\n  policy: any\n  sysext:\n    - source: file://${src}/a.raw\n      profiles: [active]\n`,
  );
  assert.deepEqual(await links(root), { active: ["a.raw"] });
});
