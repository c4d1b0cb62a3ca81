import assert from "node:assert/strict";
import { test } from "node:test";
import {
  legacyImageName,
  namingProblems,
  releaseFilePath,
  renderReleaseFile,
  systemdArchitecture,
} from "../../../../src/domain/build/release-file.js";

test("architectures map to systemd's names, riscv64 included", () => {
  assert.equal(systemdArchitecture("amd64"), "x86-64");
  assert.equal(systemdArchitecture("arm64"), "arm64");
  assert.equal(systemdArchitecture("riscv64"), "riscv64");
  assert.throws(() => systemdArchitecture("sparc"), /unknown architecture "sparc"/);
});

test("the default release file accepts any OS of the architecture", () => {
  assert.equal(
    renderReleaseFile({ kind: "sysext", name: "hello", arch: "riscv64" }),
    "ID=_any\nARCHITECTURE=riscv64\nSYSEXT_ID=hello\n",
  );
});

test("all fields, confext prefixes, and quoting of values with spaces", () => {
  const text = renderReleaseFile({
    kind: "confext",
    name: "net",
    arch: "amd64",
    osId: "kairos",
    level: "1.2",
    scope: "initrd  system",
    serviceReload: true,
    version: "1.0 beta",
  });
  assert.equal(
    text,
    'ID=kairos\nCONFEXT_LEVEL=1.2\nARCHITECTURE=x86-64\nCONFEXT_SCOPE="initrd system"\nEXTENSION_RELOAD_MANAGER=1\nCONFEXT_ID=net\nCONFEXT_VERSION_ID="1.0 beta"\n',
  );
});

test("bad combinations and values are refused", () => {
  assert.throws(
    () =>
      renderReleaseFile({ kind: "sysext", name: "x", arch: "amd64", level: "1", versionId: "2" }),
    /exclude each other/,
  );
  assert.throws(
    () => renderReleaseFile({ kind: "sysext", name: "x", arch: "amd64", scope: "everywhere" }),
    /unknown scope/,
  );
  assert.throws(
    () => renderReleaseFile({ kind: "sysext", name: "x", arch: "amd64", osId: "a\nb" }),
    /line break/,
  );
});

test("release file paths, and the name systemd 252 derives", () => {
  assert.equal(
    releaseFilePath("sysext", "hello"),
    "usr/lib/extension-release.d/extension-release.hello",
  );
  assert.equal(
    releaseFilePath("confext", "hello"),
    "etc/extension-release.d/extension-release.hello",
  );
  assert.equal(legacyImageName("sysext", "hello"), "hello.sysext");
});

test("names systemd would refuse or misname are reported", () => {
  assert.deepEqual(namingProblems("sysext", "tailscale-1.2"), []);
  assert.equal(namingProblems("sysext", ".hidden").length, 1);
  assert.equal(namingProblems("sysext", "foo.sysext").length, 1);
});
