// boot() on temp roots with refresh off (systemd's side is the e2e test's job): the state to
// profile mapping, profile-vs-common clashes, livecd and unknown, the trust hook skipping one
// image while the others load, stale links, and a second run that changes nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { lstat, mkdir, readdir, readlink, rmdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { createContext, type Context } from "../../../src/util/context.js";
import { MemoryLogger } from "../../../src/util/log.js";
import { boot, type BootTrust, type MergeCheck } from "../../../src/operations/boot.js";
import { tempRoot } from "../../helpers/tmp.js";
import { superblockStubImage } from "../../helpers/stub-image.js";

const STORE = "var/lib/kairos/extensions";

interface Node {
  dir: string;
  ctx: Context;
  log: MemoryLogger;
  cmdline: string;
}

async function node(
  t: Parameters<typeof tempRoot>[0],
  cmdline: string,
  enabled: Record<string, string[]>,
): Promise<Node> {
  const dir = await tempRoot(t);
  await mkdir(path.join(dir, STORE), { recursive: true });
  for (const [profile, names] of Object.entries(enabled)) {
    await mkdir(path.join(dir, STORE, profile), { recursive: true });
    for (const name of names) {
      await writeFile(path.join(dir, STORE, name), superblockStubImage(name));
      await symlink(`/${STORE}/${name}`, path.join(dir, STORE, profile, name)).catch(() => {});
    }
  }
  const cmdlineFile = path.join(dir, "cmdline");
  await writeFile(cmdlineFile, cmdline);
  const log = new MemoryLogger();
  return { dir, ctx: createContext({ root: dir, log }), log, cmdline: cmdlineFile };
}

const acceptAll: BootTrust = {
  policy: "any",
  source: "test",
  check: async () => ({ ok: true, outcome: "unchecked" }),
};

const mergesAll: MergeCheck = async () => ({});

async function runtime(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  let names: string[] = [];
  try {
    names = await readdir(path.join(dir, "run/extensions"));
  } catch {
    return out;
  }
  // Under --root the store writes relative targets; compare the node paths they stand for.
  for (const n of names.sort())
    out[n] = path.posix.resolve(
      "/run/extensions",
      await readlink(path.join(dir, "run/extensions", n)),
    );
  return out;
}

const ENABLED = {
  active: ["a.raw", "shared.raw"],
  passive: ["p.raw"],
  recovery: ["r.raw"],
  common: ["shared.raw", "c.raw"],
};

for (const [cmdline, profile, expected] of [
  ["root=LABEL=COS_ACTIVE", "active", ["a.raw", "c.raw", "shared.raw"]],
  ["root=LABEL=COS_PASSIVE", "passive", ["c.raw", "p.raw", "shared.raw"]],
  ["root=LABEL=COS_RECOVERY", "recovery", ["c.raw", "r.raw", "shared.raw"]],
  ["kairos.reset", "recovery", ["c.raw", "r.raw", "shared.raw"]],
] as const) {
  test(`${cmdline} links the ${profile} profile then common`, async (t) => {
    const n = await node(t, cmdline, ENABLED);
    const result = await boot(n.ctx, {
      cmdlineFile: n.cmdline,
      refresh: "none",
      trust: acceptAll,
      mergeCheck: mergesAll,
    });
    assert.equal(result.profile, profile);
    const links = await runtime(n.dir);
    assert.deepEqual(Object.keys(links), expected);
    for (const [name, target] of Object.entries(links)) {
      const from = (ENABLED[profile] as readonly string[]).includes(name) ? profile : "common";
      assert.equal(target, `/${STORE}/${from}/${name}`, `${name} goes through ${from}`);
    }
    await lstat(path.join(n.dir, "run/confexts"));
  });
}

test("the profile wins a name clash with common, with a warning", async (t) => {
  const n = await node(t, "COS_ACTIVE", ENABLED);
  const result = await boot(n.ctx, {
    cmdlineFile: n.cmdline,
    refresh: "none",
    trust: acceptAll,
    mergeCheck: mergesAll,
  });
  const clash = result.skipped.find((s) => s.name === "shared.raw");
  assert.equal(clash?.profile, "common");
  assert.equal(clash?.outcome, "clash");
  assert.match(clash?.reason ?? "", /active profile already links/);
  assert.ok(n.log.lines.some((l) => l.level === "warn" && l.message.includes("shared.raw")));
  assert.equal((await runtime(n.dir))["shared.raw"], `/${STORE}/active/shared.raw`);
});

for (const [cmdline, state] of [
  ["root=live:CDLABEL=KAIROS", "livecd"],
  ["console=ttyS0", "unknown"],
] as const) {
  test(`a ${state} boot links nothing, not even common, and writes its sentinel`, async (t) => {
    const n = await node(t, cmdline, ENABLED);
    const result = await boot(n.ctx, {
      cmdlineFile: n.cmdline,
      refresh: "none",
      trust: acceptAll,
      mergeCheck: mergesAll,
    });
    assert.equal(result.state, state);
    assert.equal(result.profile, undefined);
    assert.deepEqual(result.linked, []);
    assert.deepEqual(await runtime(n.dir), {});
    assert.deepEqual(await readdir(path.join(n.dir, "run/cos")), [`${state}_mode`]);
    await lstat(path.join(n.dir, "run/extensions"));
  });
}

test("an image that fails the trust check is skipped with its reason; the others load", async (t) => {
  const n = await node(t, "COS_ACTIVE", { active: ["good.raw", "bad.raw"], common: ["c.raw"] });
  const trust: BootTrust = {
    policy: "signed",
    source: "test",
    check: async (hostPath, name) => {
      assert.equal(hostPath, path.join(n.dir, STORE, name), "the check sees the image itself");
      if (name === "bad.raw") return { ok: false, outcome: "unsigned", reason: "it is unsigned" };
      if (name === "c.raw") throw new Error("reader blew up");
      return { ok: true, outcome: "ok" };
    },
  };
  const result = await boot(n.ctx, {
    cmdlineFile: n.cmdline,
    refresh: "none",
    trust,
    mergeCheck: mergesAll,
  });
  assert.deepEqual(Object.keys(await runtime(n.dir)), ["good.raw"]);
  const bad = result.skipped.find((s) => s.name === "bad.raw");
  assert.equal(bad?.outcome, "unsigned");
  assert.match(bad?.reason ?? "", /fails the signed policy: it is unsigned/);
  assert.match(result.skipped.find((s) => s.name === "c.raw")?.reason ?? "", /reader blew up/);
});

test("an image check calls REFUSED for the root's systemd is not linked, with check's reason; the others are", async (t) => {
  const n = await node(t, "COS_ACTIVE", { active: ["good.raw", "renamed.raw"] });
  const seen: string[] = [];
  const mergeCheck: MergeCheck = async (_ctx, hostPath, name, kind) => {
    seen.push(`${kind} ${name} ${path.basename(hostPath)}`);
    return name === "renamed.raw" ? { refusal: "no extension-release.renamed in the image" } : {};
  };
  const result = await boot(n.ctx, {
    cmdlineFile: n.cmdline,
    refresh: "none",
    trust: acceptAll,
    mergeCheck,
  });
  assert.deepEqual(Object.keys(await runtime(n.dir)), ["good.raw"]);
  const skipped = result.skipped.find((s) => s.name === "renamed.raw");
  assert.equal(skipped?.outcome, "refused");
  assert.equal(skipped?.reason, "no extension-release.renamed in the image");
  assert.ok(seen.includes("sysext renamed.raw renamed.raw"), seen.join(", "));
  assert.ok(
    n.log.lines.some((l) =>
      /skipping sysext renamed\.raw .*no extension-release\.renamed/.test(l.message),
    ),
    "the refusal is in the log",
  );
});

test("a profile link to a missing image is skipped", async (t) => {
  const n = await node(t, "COS_ACTIVE", { active: ["a.raw"] });
  await symlink(`/${STORE}/gone.raw`, path.join(n.dir, STORE, "active/gone.raw"));
  const result = await boot(n.ctx, {
    cmdlineFile: n.cmdline,
    refresh: "none",
    trust: acceptAll,
    mergeCheck: mergesAll,
  });
  assert.equal(result.skipped[0]?.name, "gone.raw");
  assert.equal(result.skipped[0]?.outcome, "missing");
  assert.deepEqual(Object.keys(await runtime(n.dir)), ["a.raw"]);
});

test("running boot twice changes nothing", async (t) => {
  const n = await node(t, "COS_ACTIVE", ENABLED);
  await boot(n.ctx, {
    cmdlineFile: n.cmdline,
    refresh: "none",
    trust: acceptAll,
    mergeCheck: mergesAll,
  });
  const before = await runtime(n.dir);
  const inodes = await Promise.all(
    Object.keys(before).map(async (k) => (await lstat(path.join(n.dir, "run/extensions", k))).ino),
  );
  const second = await boot(n.ctx, {
    cmdlineFile: n.cmdline,
    refresh: "none",
    trust: acceptAll,
    mergeCheck: mergesAll,
  });
  assert.deepEqual(await runtime(n.dir), before);
  const after = await Promise.all(
    Object.keys(before).map(async (k) => (await lstat(path.join(n.dir, "run/extensions", k))).ino),
  );
  assert.deepEqual(after, inodes, "no link was rewritten");
  assert.ok(second.linked.every((l) => l.action === "unchanged"));
  assert.deepEqual(second.sentinels, []);
  assert.deepEqual(second.unlinked, []);
});

test("links from another profile are removed; links pointing elsewhere stay", async (t) => {
  const n = await node(t, "COS_PASSIVE", ENABLED);
  await mkdir(path.join(n.dir, "run/extensions"), { recursive: true });
  await symlink(`/${STORE}/active/a.raw`, path.join(n.dir, "run/extensions/a.raw"));
  await symlink("/srv/mine.raw", path.join(n.dir, "run/extensions/mine.raw"));
  const result = await boot(n.ctx, {
    cmdlineFile: n.cmdline,
    refresh: "none",
    trust: acceptAll,
    mergeCheck: mergesAll,
  });
  assert.deepEqual(result.unlinked, [{ kind: "sysext", name: "a.raw" }]);
  assert.deepEqual(Object.keys(await runtime(n.dir)), ["c.raw", "mine.raw", "p.raw", "shared.raw"]);
});

test("the default trust is the node's policy: any when nothing says otherwise", async (t) => {
  const n = await node(t, "COS_ACTIVE", { active: ["a.raw"] });
  const result = await boot(n.ctx, {
    cmdlineFile: n.cmdline,
    refresh: "none",
    mergeCheck: mergesAll,
  });
  assert.equal(result.policy?.policy, "any");
  assert.deepEqual(Object.keys(await runtime(n.dir)), ["a.raw"]);
});

test("a file where the sysext store should be: boot says so and still links confexts", async (t) => {
  const n = await node(t, "COS_ACTIVE", {});
  await rmdir(path.join(n.dir, STORE));
  await writeFile(path.join(n.dir, STORE), "not a directory\n");
  const confexts = path.join(n.dir, "var/lib/kairos/confexts");
  await mkdir(path.join(confexts, "common"), { recursive: true });
  await writeFile(path.join(confexts, "e.raw"), superblockStubImage("e"));
  await symlink("/var/lib/kairos/confexts/e.raw", path.join(confexts, "common/e.raw"));
  const result = await boot(n.ctx, {
    cmdlineFile: n.cmdline,
    refresh: "none",
    trust: acceptAll,
    mergeCheck: mergesAll,
  });
  const warning = n.log.lines.find((l) => l.level === "warn" && l.message.includes(`/${STORE}`));
  assert.match(warning?.message ?? "", /is not a directory, so no sysext images are linked/);
  assert.deepEqual(
    result.linked.map((l) => [l.kind, l.name]),
    [["confext", "e.raw"]],
  );
});

test("an image cut short or not an image at all is skipped under any policy; the others load", async (t) => {
  const n = await node(t, "COS_ACTIVE", { active: ["cut.raw", "junk.raw"], common: ["c.raw"] });
  const cut = superblockStubImage("cut");
  cut.writeBigUInt64LE(65536n, 40); // claims 64 KiB, holds 4
  await writeFile(path.join(n.dir, STORE, "cut.raw"), cut);
  await writeFile(path.join(n.dir, STORE, "junk.raw"), "not an image\n");
  const result = await boot(n.ctx, {
    cmdlineFile: n.cmdline,
    refresh: "none",
    trust: acceptAll,
    mergeCheck: mergesAll,
  });
  assert.deepEqual(Object.keys(await runtime(n.dir)), ["c.raw"]);
  const reasons = Object.fromEntries(result.skipped.map((s) => [s.name, s.reason]));
  assert.match(reasons["cut.raw"] ?? "", /claims 65536 bytes but the image has only 4096/);
  assert.match(reasons["junk.raw"] ?? "", /too small|neither a GPT/);
  for (const name of ["cut.raw", "junk.raw"])
    assert.ok(
      n.log.lines.some((l) => l.level === "warn" && l.message.includes(`skipping sysext ${name}`)),
      `the journal names ${name}`,
    );
});
