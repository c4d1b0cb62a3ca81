// The library entry point exposes every operation as a plain function, and works end to end
// without the CLI: install, enable and list on a temp root.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import * as extctl from "../../src/index.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";
import { stubImage } from "../helpers/stub-image.js";

/** An operation as the library promises it: a Context and one options object, a plain result. */
type Operation<O, R> = (ctx: extctl.Context, options: O) => Promise<R>;

// Checked by the compiler: each operation is exported with the Options and Result types it takes
// and returns.
const OPERATIONS = {
  install: extctl.install satisfies Operation<extctl.InstallOptions, extctl.InstallResult>,
  installByName: extctl.installByName satisfies Operation<
    extctl.InstallNameOptions,
    extctl.InstallNameResult
  >,
  enable: extctl.enable satisfies Operation<extctl.EnableOptions, extctl.EnableResult>,
  disable: extctl.disable satisfies Operation<extctl.DisableOptions, extctl.DisableResult>,
  remove: extctl.remove satisfies Operation<extctl.RemoveOptions, extctl.RemoveResult>,
  list: extctl.list satisfies Operation<extctl.ListOptions, extctl.ListResult>,
  status: extctl.status satisfies Operation<extctl.StatusOptions, extctl.StatusResult>,
  upgrade: extctl.upgrade satisfies Operation<extctl.UpgradeOptions, extctl.UpgradeResult>,
  rollback: extctl.rollback satisfies Operation<extctl.RollbackOptions, extctl.RollbackResult>,
  listVersions: extctl.listVersions satisfies Operation<
    extctl.VersionsOptions,
    extctl.VersionsResult
  >,
  buildImage: extctl.buildImage satisfies Operation<extctl.BuildOptions, extctl.BuildResult>,
  inspectImage: extctl.inspectImage satisfies Operation<
    extctl.InspectOptions,
    extctl.InspectResult
  >,
  catImageFile: extctl.catImageFile satisfies Operation<extctl.CatOptions, extctl.CatResult>,
  checkImage: extctl.checkImage satisfies Operation<extctl.CheckOptions, extctl.CheckResult>,
  verifyImage: extctl.verifyImage satisfies Operation<extctl.VerifyOptions, extctl.VerifyResult>,
  publish: extctl.publish satisfies Operation<extctl.PublishOptions, extctl.PublishResult>,
  listTrust: extctl.listTrust satisfies Operation<extctl.TrustListOptions, extctl.TrustListResult>,
  importEfiTrust: extctl.importEfiTrust satisfies Operation<
    extctl.EfiImportOptions,
    extctl.EfiImportResult
  >,
  boot: extctl.boot satisfies Operation<extctl.BootOptions, extctl.BootResult>,
  apply: extctl.apply satisfies Operation<extctl.ApplyOptions, extctl.ApplyResult>,
  systemdInstall: extctl.systemdInstall satisfies Operation<
    extctl.SystemdInstallOptions,
    extctl.SystemdInstallResult
  >,
  signCatalog: extctl.signCatalog satisfies Operation<
    extctl.CatalogSignOptions,
    extctl.CatalogSignResult
  >,
  verifyCatalog: extctl.verifyCatalog satisfies Operation<
    extctl.CatalogVerifyOptions,
    extctl.CatalogVerifyResult
  >,
  publishCatalog: extctl.publishCatalog satisfies Operation<
    extctl.CatalogPublishOptions,
    extctl.CatalogPublishResult
  >,
};

test("every command has a library function, exported with its Options and Result", () => {
  for (const [name, operation] of Object.entries(OPERATIONS))
    assert.equal(typeof operation, "function", name);
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
