// resolveName's versioned fallback (issue 14 item 4): a bare NAME finds the one NAME-VERSION or
// NAME_VERSION image after an exact match fails; never NAME-agent, non-NAME or NAMEx-1.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { resolveName, versionedCandidates } from "../../../../src/domain/store/names.js";
import type { ExtctlError } from "../../../../src/util/errors.js";

const where = { where: "the store /var/lib/extensions" };

describe("a bare name finds the one image with a version", () => {
  test("NAME-vVERSION, NAME_VERSION and NAME-VERSION with any known suffix", () => {
    assert.equal(
      resolveName("mytool", ["mytool-v1.0.sysext.raw", "mytool-agent.raw"], where),
      "mytool-v1.0.sysext.raw",
    );
    assert.equal(resolveName("mytool", ["mytool_1.2.raw"], where), "mytool_1.2.raw");
    assert.equal(resolveName("mytool", ["mytool-2.raw"], where), "mytool-2.raw");
    assert.equal(resolveName("net", ["net-0.9.confext.raw"], where), "net-0.9.confext.raw");
    assert.equal(resolveName("a-b", ["a-b-1.0+git.raw", "a-1.raw"], where), "a-b-1.0+git.raw");
  });

  test("an exact match wins over versioned ones", () => {
    assert.equal(
      resolveName("mytool", ["mytool-1.raw", "mytool.raw", "mytool-2.raw"], where),
      "mytool.raw",
    );
  });

  test("never NAME-agent, non-NAME, NAMEx-1, NAME-v, NAME- or NAME-vx (Kairos 4767)", () => {
    for (const other of [
      "k3s-agent.raw",
      "non-k3s.raw",
      "k3sx-1.raw",
      "k3s-v.raw",
      "k3s-.raw",
      "k3s-vx1.raw",
      "k3s.1.raw",
      "k3s-1 2.raw",
    ]) {
      assert.deepEqual(versionedCandidates("k3s", [other]), [], other);
      assert.throws(() => resolveName("k3s", [other], where), { code: "not-found" }, other);
    }
  });

  test("not found names what is near and says what a versioned name looks like", () => {
    assert.throws(
      () => resolveName("k3s", ["k3s-agent.raw"], where),
      (e: ExtctlError) =>
        e.code === "not-found" &&
        e.message === 'no image named "k3s" in the store /var/lib/extensions' &&
        /k3s-agent\.raw/.test(e.hint ?? ""),
    );
    assert.throws(
      () => resolveName("zzz", ["k3s-agent.raw"], where),
      (e: ExtctlError) => e.code === "not-found" && /NAME-VERSION/.test(e.hint ?? ""),
    );
  });

  test("two or more versions are ambiguous and listed; the hint asks for the full name", () => {
    assert.throws(
      () => resolveName("mytool", ["mytool-2.raw", "mytool-1.raw", "other-1.raw"], where),
      (e: ExtctlError) =>
        e.code === "ambiguous" &&
        e.exitCode === 1 &&
        e.message.includes("mytool-1.raw, mytool-2.raw") &&
        !e.message.includes("other") &&
        /full file name/.test(e.hint ?? ""),
    );
    assert.throws(() => resolveName("mytool", ["mytool-1.raw", "mytool_1.sysext.raw"], where), {
      code: "ambiguous",
    });
  });

  test("a query with a suffix is a full file name, and --regex is unchanged", () => {
    assert.throws(() => resolveName("mytool.raw", ["mytool-1.raw"], where), { code: "not-found" });
    assert.throws(() => resolveName("^mytool$", ["mytool-1.raw"], { ...where, regex: true }), {
      code: "not-found",
    });
  });
});
