// Kairos's own tests (spec/kairos.md section 2, "Kairos's own tests"), as extctl behaviours, for
// both kinds. systemd is faked here; test/e2e runs the same verbs against the real one.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { LAYOUTS, type ExtensionKind } from "../../../src/domain/store/layout.js";
import { install } from "../../../src/operations/install.js";
import { enable } from "../../../src/operations/enable.js";
import { disable } from "../../../src/operations/disable.js";
import { remove } from "../../../src/operations/remove.js";
import { list } from "../../../src/operations/list.js";
import type { ExtctlError } from "../../../src/util/errors.js";
import { testNode } from "../../helpers/node.js";
import { tempDir } from "../../helpers/tmp.js";
import { stubImage } from "../../helpers/stub-image.js";

for (const kind of ["sysext", "confext"] as const satisfies readonly ExtensionKind[]) {
  const { store, runtime } = LAYOUTS[kind];

  describe(`${kind}: list`, () => {
    test("a missing store lists empty, not an error", async (t) => {
      const node = await testNode(t);
      assert.deepEqual((await list(node.ctx, { kind })).images, []);
      assert.deepEqual((await list(node.ctx, { kind, profile: "active" })).images, []);
    });

    test("only .raw files are listed", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      await node.addImage(kind, "b.img");
      await node.addImage(kind, "notes.txt");
      await mkdir(node.host(`${store}/dir.raw`), { recursive: true });
      assert.deepEqual(
        (await list(node.ctx, { kind })).images.map((i) => i.name),
        ["a.raw"],
      );
    });

    test("a profile lists what is enabled in it, and an empty profile lists empty", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      await enable(node.ctx, { kind, name: "a", profile: "passive" });
      assert.deepEqual(
        (await list(node.ctx, { kind, profile: "passive" })).images.map((i) => i.name),
        ["a.raw"],
      );
      assert.deepEqual((await list(node.ctx, { kind, profile: "recovery" })).images, []);
    });
  });

  describe(`${kind}: enable`, () => {
    for (const profile of ["active", "passive", "recovery"] as const) {
      test(`enable into ${profile} creates only that profile's link`, async (t) => {
        const node = await testNode(t);
        await node.addImage(kind, "a.raw");
        await enable(node.ctx, { kind, name: "a.raw", profile });
        assert.equal(await node.link(`${store}/${profile}/a.raw`), `${store}/a.raw`);
        for (const other of ["active", "passive", "recovery", "common"].filter(
          (p) => p !== profile,
        )) {
          assert.equal(await node.exists(`${store}/${other}/a.raw`), false, other);
        }
        assert.equal(await node.exists(`${runtime}/a.raw`), false);
        assert.equal(node.systemd.refreshes, 0);
      });
    }

    test("enabling twice succeeds", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      assert.equal((await enable(node.ctx, { kind, name: "a", profile: "active" })).linked, true);
      assert.equal((await enable(node.ctx, { kind, name: "a", profile: "active" })).linked, false);
    });

    test("enabling a missing image fails", async (t) => {
      const node = await testNode(t);
      await assert.rejects(enable(node.ctx, { kind, name: "nope", profile: "active" }), {
        code: "not-found",
      });
    });

    test("--now with the active sentinel links into /run and refreshes", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      await node.boot("active");
      const result = await enable(node.ctx, { kind, name: "a", profile: "active", now: true });
      assert.equal(await node.link(`${runtime}/a.raw`), `${store}/active/a.raw`);
      assert.equal(node.systemd.refreshes, 1);
      assert.equal(
        node.systemd.calls[0]?.[0],
        kind === "sysext" ? "systemd-sysext" : "systemd-confext",
      );
      assert.equal(result.merged, true);
    });

    test("--common --now merges without any sentinel", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      await enable(node.ctx, { kind, name: "a", profile: "common", now: true });
      assert.equal(await node.link(`${runtime}/a.raw`), `${store}/common/a.raw`);
      assert.equal(node.systemd.refreshes, 1);
    });

    test("--now in a profile the node is not booted in links nothing in /run and does not refresh", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      await node.boot("passive");
      const result = await enable(node.ctx, { kind, name: "a", profile: "active", now: true });
      assert.equal(await node.exists(`${runtime}/a.raw`), false);
      assert.equal(node.systemd.refreshes, 0);
      assert.match(result.notLive ?? "", /not booted in the active profile/);
      assert.equal(await node.link(`${store}/active/a.raw`), `${store}/a.raw`);
    });
  });

  describe(`${kind}: disable`, () => {
    test("disable removes the profile link", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      await enable(node.ctx, { kind, name: "a", profile: "active" });
      assert.equal(
        (await disable(node.ctx, { kind, name: "a", profile: "active" })).unlinked,
        true,
      );
      assert.equal(await node.exists(`${store}/active/a.raw`), false);
      assert.equal(await node.exists(`${store}/a.raw`), true);
    });

    test("disabling something not enabled succeeds", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      assert.equal(
        (await disable(node.ctx, { kind, name: "a", profile: "active" })).unlinked,
        false,
      );
      assert.equal(
        (await disable(node.ctx, { kind, name: "ghost", profile: "active" })).unlinked,
        false,
      );
    });

    test("disable --now of a merged image unlinks /run and refreshes", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      await enable(node.ctx, { kind, name: "a", profile: "common", now: true });
      const result = await disable(node.ctx, { kind, name: "a", profile: "common", now: true });
      assert.equal(result.unlinkedRuntime, true);
      assert.equal(await node.exists(`${runtime}/a.raw`), false);
      assert.equal(node.systemd.refreshes, 2);
    });

    test("a failed refresh is an error", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      await enable(node.ctx, { kind, name: "a", profile: "common", now: true });
      node.systemd.failNext = 1;
      await assert.rejects(
        disable(node.ctx, { kind, name: "a", profile: "common", now: true }),
        (e: ExtctlError) => {
          assert.equal(e.code, "refresh");
          assert.match(e.message, /Device or resource busy/);
          return true;
        },
      );
    });
  });

  describe(`${kind}: install`, () => {
    test("file: keeps the mode (0640 stays 0640) and creates the missing store dir", async (t) => {
      const node = await testNode(t);
      const src = path.join(await tempDir(t), "tool.raw");
      await writeFile(src, stubImage("payload"));
      await (await import("node:fs/promises")).chmod(src, 0o640);
      const result = await install(node.ctx, { kind, uri: `file://${src}` });
      assert.equal(result.images[0]?.name, "tool.raw");
      assert.equal((await stat(node.host(`${store}/tool.raw`))).mode & 0o7777, 0o640);
    });

    test("file: bytes that are no extension image are refused and nothing is stored", async (t) => {
      const node = await testNode(t);
      const src = path.join(await tempDir(t), "notes.raw");
      await writeFile(src, "just some text, not a filesystem".repeat(200));
      await assert.rejects(install(node.ctx, { kind, uri: `file://${src}` }), (e: Error) => {
        assert.match(
          e.message,
          /"notes\.raw" from .* is not an extension image.*nothing was stored/,
        );
        return true;
      });
      assert.deepEqual(await readdir(node.host(store)).catch(() => []), []);
    });

    test("a missing file fails", async (t) => {
      const node = await testNode(t);
      await assert.rejects(install(node.ctx, { kind, uri: "file:///does/not/exist.raw" }), {
        code: "not-found",
      });
    });

    for (const uri of ["ftp://example.org/x.raw", "gopher:x.raw", "x.raw", "/abs/x.raw"]) {
      test(`${uri} is refused`, async (t) => {
        const node = await testNode(t);
        await assert.rejects(install(node.ctx, { kind, uri }), { code: "invalid-uri" });
      });
    }

    test("an invalid OCI reference is refused", async (t) => {
      const node = await testNode(t);
      await assert.rejects(install(node.ctx, { kind, uri: "oci://UPPER/Case::bad" }), {
        code: "invalid-uri",
      });
    });

    test("a file sitting where the store dir should be fails and is left alone", async (t) => {
      const node = await testNode(t);
      const src = path.join(await tempDir(t), "tool.raw");
      await writeFile(src, stubImage("payload"));
      await mkdir(path.dirname(node.host(store)), { recursive: true });
      await writeFile(node.host(store), "in the way");
      await assert.rejects(install(node.ctx, { kind, uri: `file://${src}` }), {
        code: "not-a-directory",
      });
      assert.equal((await stat(node.host(store))).isFile(), true);
    });
  });

  describe(`${kind}: remove`, () => {
    test("remove deletes the image and all its links", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      for (const profile of ["active", "passive", "recovery", "common"] as const) {
        await enable(node.ctx, { kind, name: "a", profile });
      }
      const result = await remove(node.ctx, { kind, name: "a" });
      assert.deepEqual(result.profiles, ["active", "passive", "recovery", "common"]);
      assert.equal(await node.exists(`${store}/a.raw`), false);
      for (const profile of ["active", "passive", "recovery", "common"]) {
        assert.equal(await node.exists(`${store}/${profile}/a.raw`), false);
      }
    });

    test("removing a missing image fails", async (t) => {
      const node = await testNode(t);
      await assert.rejects(remove(node.ctx, { kind, name: "a" }), { code: "not-found" });
    });

    test("remove --now of a merged image unlinks /run and refreshes", async (t) => {
      const node = await testNode(t);
      await node.addImage(kind, "a.raw");
      await enable(node.ctx, { kind, name: "a", profile: "common", now: true });
      const result = await remove(node.ctx, { kind, name: "a", now: true });
      assert.equal(result.unlinkedRuntime, true);
      assert.equal(await node.exists(`${runtime}/a.raw`), false);
      assert.equal(node.systemd.refreshes, 2);
    });
  });
}
