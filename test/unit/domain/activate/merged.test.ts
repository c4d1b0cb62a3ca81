// Reading what systemd merged from its markers, wherever systemd put them: in the default
// hierarchies, in /usr's subdirs one by one (a booted node whose systemd-sysext.service runs with
// the drop-in's SYSTEMD_SYSEXT_HIERARCHIES, issue 17: enable --now called its own merge a failure
// and undid it), and in a hierarchy named by the variable.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { Root } from "../../../../src/util/root.js";
import { mergedNames, readMerged } from "../../../../src/domain/activate/merged.js";
import { enable } from "../../../../src/operations/enable.js";
import { status } from "../../../../src/operations/status.js";
import { LAYOUTS } from "../../../../src/domain/store/layout.js";
import { tempRoot } from "../../../helpers/tmp.js";
import { testNode } from "../../../helpers/node.js";

async function marker(root: string, hierarchy: string, names: string[], confext = false) {
  const dir = path.join(root, hierarchy, confext ? ".systemd-confext" : ".systemd-sysext");
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, confext ? "confexts" : "extensions"), names.join("\n") + "\n");
}

describe("readMerged", () => {
  test("reads /usr's marker when systemd merged /usr as a whole", async (t) => {
    const dir = await tempRoot(t);
    await marker(dir, "/usr", ["a", "b"]);
    const merged = await readMerged(new Root(dir), "sysext");
    assert.deepEqual(
      merged.map((h) => [h.hierarchy, h.extensions]),
      [["/usr", ["a", "b"]]],
    );
  });

  test("reads the markers of /usr's subdirs, as systemd writes them under extctl's drop-in", async (t) => {
    const dir = await tempRoot(t);
    await mkdir(path.join(dir, "usr/share"), { recursive: true });
    await marker(dir, "/usr/bin", ["a", "b", "c"]);
    await marker(dir, "/usr/lib", ["a", "b", "c"]);
    const merged = await readMerged(new Root(dir), "sysext");
    assert.deepEqual(
      merged.map((h) => [h.hierarchy, h.extensions]),
      [
        ["/usr/bin", ["a", "b", "c"]],
        ["/usr/lib", ["a", "b", "c"]],
      ],
    );
    assert.deepEqual([...mergedNames(merged)].sort(), ["a", "b", "c"]);
  });

  test("reads a hierarchy named by $SYSTEMD_SYSEXT_HIERARCHIES, and not without it", async (t) => {
    const dir = await tempRoot(t);
    await marker(dir, "/srv/tools", ["x"]);
    const root = new Root(dir);
    assert.deepEqual(await readMerged(root, "sysext"), []);
    const merged = await readMerged(root, "sysext", {
      SYSTEMD_SYSEXT_HIERARCHIES: "/usr:/srv/tools",
    });
    assert.deepEqual(
      merged.map((h) => [h.hierarchy, h.extensions]),
      [["/srv/tools", ["x"]]],
    );
  });

  test("confext markers in /etc and in an /etc subdir", async (t) => {
    const dir = await tempRoot(t);
    await marker(dir, "/etc", ["e"], true);
    await marker(dir, "/etc/ssh", ["s"], true);
    const merged = await readMerged(new Root(dir), "confext");
    assert.deepEqual(
      merged.map((h) => [h.hierarchy, h.extensions]),
      [
        ["/etc", ["e"]],
        ["/etc/ssh", ["s"]],
      ],
    );
  });
});

describe("a node whose systemd merges /usr's subdirs one by one", () => {
  test("enable --now reports the merge and keeps its links; status agrees", async (t) => {
    const node = await testNode(t);
    node.systemd.sysextHierarchies = ["/usr/bin", "/usr/lib"];
    await node.addImage("sysext", "a.raw");
    await node.addImage("sysext", "c.raw");
    await enable(node.ctx, { kind: "sysext", name: "a", profile: "common", now: true });
    const result = await enable(node.ctx, {
      kind: "sysext",
      name: "c",
      profile: "common",
      now: true,
    });
    assert.equal(result.merged, true);
    const { store, runtime } = LAYOUTS.sysext;
    assert.equal(await node.link(`${runtime}/c.raw`), `${store}/common/c.raw`);
    assert.equal(await node.link(`${store}/common/c.raw`), `${store}/c.raw`);
    const st = await status(node.ctx, { kinds: ["sysext"] });
    const sysext = st.kinds[0];
    assert.deepEqual(
      sysext?.merged.map((h) => h.hierarchy),
      ["/usr/bin", "/usr/lib"],
    );
    assert.deepEqual(sysext?.mismatches, []);
  });
});
