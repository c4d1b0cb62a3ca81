// systemd's view of its search dirs per version (image_discover): images, directory extensions,
// and from 256 on version directories with the version picked; masking built on it.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Root } from "../../../../src/util/root.js";
import { searchEntries } from "../../../../src/domain/activate/search-entries.js";
import { masksBefore } from "../../../../src/domain/activate/masking.js";

async function fixture(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "extctl-search-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const put = async (p: string, content = "x") => {
    await mkdir(path.dirname(path.join(dir, p)), { recursive: true });
    await writeFile(path.join(dir, p), content);
  };
  await mkdir(path.join(dir, "etc/extensions/empty"), { recursive: true });
  await put("etc/extensions/vt.raw.v/vt_1.raw");
  await put("etc/extensions/vt.raw.v/vt_1.10.raw");
  await put("etc/extensions/none.raw.v/other_1.raw");
  await put("var/lib/extensions/dx/usr/lib/extension-release.d/extension-release.dx");
  await put("var/lib/extensions/tool.sysext.raw");
  await put("var/lib/extensions/notes.txt");
  return dir;
}

test("systemd 257: version directories pick a version, a directory is an extension, an empty one masks", async (t) => {
  const root = new Root(await fixture(t));
  const entries = await searchEntries(root, "sysext", 257);
  assert.deepEqual(
    entries.map((e) => [e.name, e.type, e.picked?.file, e.empty ?? false, e.skipped !== undefined]),
    [
      ["empty", "directory", undefined, true, false],
      ["none", "versioned", undefined, false, true],
      ["vt", "versioned", "vt_1.10.raw", false, false],
      ["dx", "directory", undefined, false, false],
      ["tool", "image", undefined, false, false],
    ],
  );
  const masks = await masksBefore(root, "sysext", 257, "/run/extensions");
  assert.deepEqual(Object.fromEntries(masks), {
    empty: { path: "/etc/extensions/empty", by: "empty-directory" },
    vt: { path: "/etc/extensions/vt.raw.v/vt_1.10.raw", by: "image" },
  });
});

test("systemd 252: no systemd.v, so NAME.raw.v/ is a directory of that name; NAME.sysext keeps its suffix", async (t) => {
  const root = new Root(await fixture(t));
  const entries = await searchEntries(root, "sysext", 252);
  assert.deepEqual(
    entries.map((e) => [e.name, e.type]),
    [
      ["empty", "directory"],
      ["none.raw.v", "directory"],
      ["vt.raw.v", "directory"],
      ["dx", "directory"],
      ["tool.sysext", "image"],
    ],
  );
});
