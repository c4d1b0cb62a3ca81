// Where Kairos is wrong and extctl does better (spec/kairos.md "ours" 1-6), one test each.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { LAYOUTS } from "../../../src/domain/store/layout.js";
import { enable } from "../../../src/operations/enable.js";
import { disable } from "../../../src/operations/disable.js";
import { remove } from "../../../src/operations/remove.js";
import { status } from "../../../src/operations/status.js";
import { resolveName } from "../../../src/domain/store/names.js";
import type { ExtctlError } from "../../../src/util/errors.js";
import { testNode } from "../../helpers/node.js";

const { store, runtime } = LAYOUTS.sysext;

describe("ours 1: names match exactly; --regex opts into a pattern", () => {
  const where = { where: "the store" };
  test("fips does not hit non-fips.raw", () => {
    assert.equal(resolveName("fips", ["fips.raw", "non-fips.raw"], where), "fips.raw");
    assert.throws(() => resolveName("fips", ["non-fips.raw"], where), { code: "not-found" });
  });
  test("tailscale does not hit tailscale-agent.raw", () => {
    assert.equal(
      resolveName("tailscale", ["tailscale-agent.raw", "tailscale.sysext.raw"], where),
      "tailscale.sysext.raw",
    );
  });
  test("nvidia+cuda matches itself", () => {
    assert.equal(resolveName("nvidia+cuda", ["nvidia+cuda.raw"], where), "nvidia+cuda.raw");
  });
  test("with or without .raw, .sysext.raw or .confext.raw", () => {
    for (const q of ["k3s", "k3s.sysext.raw"])
      assert.equal(resolveName(q, ["k3s.sysext.raw"], where), "k3s.sysext.raw");
    assert.equal(resolveName("net", ["net.confext.raw"], where), "net.confext.raw");
    assert.equal(resolveName("a.raw", ["a.raw"], where), "a.raw");
  });
  test("an exact name that fits two files is ambiguous and lists both", () => {
    assert.throws(
      () => resolveName("k3s", ["k3s.raw", "k3s.sysext.raw"], where),
      (e: ExtctlError) => e.code === "ambiguous" && /k3s\.raw, k3s\.sysext\.raw/.test(e.message),
    );
  });
  test("--regex matching more than one image is an error listing them", () => {
    assert.throws(
      () =>
        resolveName("^tail", ["tailscale.raw", "tailscale-agent.raw", "k3s.raw"], {
          ...where,
          regex: true,
        }),
      (e: ExtctlError) =>
        e.code === "ambiguous" && e.message.includes("tailscale-agent.raw, tailscale.raw"),
    );
    assert.equal(
      resolveName("^k3", ["tailscale.raw", "k3s.raw"], { ...where, regex: true }),
      "k3s.raw",
    );
  });
  test("an invalid --regex is a usage error", () => {
    assert.throws(() => resolveName("(", ["a.raw"], { ...where, regex: true }), { code: "usage" });
  });
});

describe("ours 2: remove deletes exactly the resolved image's links", () => {
  test("removing tailscale leaves tailscale-agent's links alone", async (t) => {
    const node = await testNode(t);
    await node.addImage("sysext", "tailscale.raw");
    await node.addImage("sysext", "tailscale-agent.raw");
    for (const name of ["tailscale", "tailscale-agent"]) {
      await enable(node.ctx, { kind: "sysext", name, profile: "active" });
      await enable(node.ctx, { kind: "sysext", name, profile: "common" });
    }
    await remove(node.ctx, { kind: "sysext", name: "tailscale" });
    assert.equal(await node.exists(`${store}/tailscale-agent.raw`), true);
    assert.equal(
      await node.link(`${store}/active/tailscale-agent.raw`),
      `${store}/tailscale-agent.raw`,
    );
    assert.equal(
      await node.link(`${store}/common/tailscale-agent.raw`),
      `${store}/tailscale-agent.raw`,
    );
    assert.equal(await node.exists(`${store}/active/tailscale.raw`), false);
  });
});

describe("ours 3: enable --now is honoured when already enabled", () => {
  test("an image enabled earlier merges with a second enable --now", async (t) => {
    const node = await testNode(t);
    await node.addImage("sysext", "a.raw");
    await enable(node.ctx, { kind: "sysext", name: "a", profile: "common" });
    const result = await enable(node.ctx, {
      kind: "sysext",
      name: "a",
      profile: "common",
      now: true,
    });
    assert.equal(result.linked, false);
    assert.equal(result.merged, true);
    assert.equal(await node.link(`${runtime}/a.raw`), `${store}/common/a.raw`);
    assert.equal(node.systemd.refreshes, 1);
  });
});

describe("ours 4: the links a command made are rolled back when the refresh fails", () => {
  test("enable --now: both new links are gone after a failed refresh, and the error says why", async (t) => {
    const node = await testNode(t);
    await node.addImage("sysext", "a.raw");
    node.systemd.failNext = 1;
    await assert.rejects(
      enable(node.ctx, { kind: "sysext", name: "a", profile: "common", now: true }),
      (e: ExtctlError) => {
        assert.equal(e.code, "refresh");
        assert.match(e.message, /Device or resource busy/);
        assert.match(e.message, /undone/);
        return true;
      },
    );
    assert.equal(await node.exists(`${runtime}/a.raw`), false);
    assert.equal(await node.exists(`${store}/common/a.raw`), false);
    assert.equal(node.systemd.refreshes, 2, "a second refresh restores the previous state");
  });

  test("enable --now keeps a profile link that existed before the command", async (t) => {
    const node = await testNode(t);
    await node.addImage("sysext", "a.raw");
    await enable(node.ctx, { kind: "sysext", name: "a", profile: "common" });
    node.systemd.failNext = 1;
    await assert.rejects(
      enable(node.ctx, { kind: "sysext", name: "a", profile: "common", now: true }),
    );
    assert.equal(await node.link(`${store}/common/a.raw`), `${store}/a.raw`);
    assert.equal(await node.exists(`${runtime}/a.raw`), false);
  });

  test("disable --now: the links come back after a failed refresh", async (t) => {
    const node = await testNode(t);
    await node.addImage("sysext", "a.raw");
    await enable(node.ctx, { kind: "sysext", name: "a", profile: "common", now: true });
    node.systemd.failNext = 1;
    await assert.rejects(
      disable(node.ctx, { kind: "sysext", name: "a", profile: "common", now: true }),
    );
    assert.equal(await node.link(`${runtime}/a.raw`), `${store}/common/a.raw`);
    assert.equal(await node.link(`${store}/common/a.raw`), `${store}/a.raw`);
  });

  test("remove --now: nothing is deleted when the refresh fails", async (t) => {
    const node = await testNode(t);
    await node.addImage("sysext", "a.raw");
    await enable(node.ctx, { kind: "sysext", name: "a", profile: "common", now: true });
    node.systemd.failNext = 1;
    await assert.rejects(remove(node.ctx, { kind: "sysext", name: "a", now: true }));
    assert.equal(await node.exists(`${store}/a.raw`), true);
    assert.equal(await node.link(`${runtime}/a.raw`), `${store}/common/a.raw`);
    assert.equal(await node.link(`${store}/common/a.raw`), `${store}/a.raw`);
  });
});

describe("ours 5: autoreset counts as recovery", () => {
  test("--recovery --now merges on an autoreset boot", async (t) => {
    const node = await testNode(t);
    await node.addImage("sysext", "a.raw");
    await node.boot("autoreset");
    const result = await enable(node.ctx, {
      kind: "sysext",
      name: "a",
      profile: "recovery",
      now: true,
    });
    assert.equal(result.merged, true);
    assert.equal(await node.link(`${runtime}/a.raw`), `${store}/recovery/a.raw`);
  });
});

describe("ours 6: images linked but not merged are reported with the reason", () => {
  test("enable --now of an image systemd refuses fails with systemd's reason and undoes its links", async (t) => {
    const node = await testNode(t);
    await node.addImage("sysext", "bad.raw");
    node.systemd.refuse.set("bad", "is for OS 'fedora', but deployed on top of 'debian'");
    await assert.rejects(
      enable(node.ctx, { kind: "sysext", name: "bad", profile: "common", now: true }),
      (e: ExtctlError) => {
        assert.equal(e.code, "incompatible");
        assert.match(e.message, /bad\.raw was not merged: Extension 'bad' is for OS 'fedora'/);
        return true;
      },
    );
    assert.equal(await node.exists(`${runtime}/bad.raw`), false);
  });

  test("after a refresh, other linked images that did not merge are warned about", async (t) => {
    const node = await testNode(t);
    await node.addImage("sysext", "good.raw");
    await node.addImage("sysext", "old.raw");
    await enable(node.ctx, { kind: "sysext", name: "old", profile: "common", now: true });
    node.systemd.refuse.set("old", "is for OS 'fedora', but deployed on top of 'debian'");
    const result = await enable(node.ctx, {
      kind: "sysext",
      name: "good",
      profile: "common",
      now: true,
    });
    assert.equal(result.merged, true);
    assert.deepEqual(
      result.activation?.unmerged.map((u) => u.name),
      ["old.raw"],
    );
    assert.ok(
      node.log.lines.some(
        (l) => l.level === "warn" && /old\.raw .*not merged.*fedora/.test(l.message),
      ),
    );
    const st = await status(node.ctx, { kinds: ["sysext"] });
    assert.ok(
      st.kinds[0]?.mismatches.some(
        (m) => m.name === "old.raw" && m.problem === "linked-not-merged",
      ),
    );
  });
});
