// The library entry point exposes every operation as a plain function, and works end to end
// without the CLI: install, enable and list on a temp root.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import * as extctl from "../../src/index.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { stubImage } from "../helpers/stub-image.js";

test("every command has a library function", () => {
  for (const name of [
    "install",
    "enable",
    "disable",
    "remove",
    "list",
    "status",
    "buildImage",
    "inspectImage",
    "checkImage",
    "verifyImage",
    "publish",
    "listTrust",
    "importEfiTrust",
    "boot",
    "apply",
    "systemdInstall",
  ]) {
    assert.equal(typeof (extctl as Record<string, unknown>)[name], "function", name);
  }
});

test("install, enable and list through the library", async (t) => {
  const root = await tempRoot(t);
  const src = path.join(await tempDir(t), "tool.raw");
  await writeFile(src, stubImage("tool"));
  const ctx = extctl.createContext({ root, log: extctl.silentLogger });
  await extctl.install(ctx, { kind: "sysext", uri: `file://${src}` });
  await extctl.enable(ctx, { kind: "sysext", name: "tool", profile: "passive" });
  const listed = await extctl.list(ctx, { kind: "sysext" });
  assert.deepEqual(
    listed.images.map((i) => [i.name, i.profiles, i.compatible]),
    [["tool.raw", ["passive"], false]],
  );
});
