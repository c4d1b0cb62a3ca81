// The health check's text is read into an argv without a shell, and run with a timeout (issue 28
// item 4). The runs are real processes (sh, sleep), not fakes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseHealthCheck, runHealthCheck } from "../../../../src/domain/lifecycle/health-check.js";
import { createContext } from "../../../../src/util/context.js";
import { ExtctlError } from "../../../../src/util/errors.js";

test("words split on whitespace; quotes and backslashes keep their text as it is", () => {
  assert.deepEqual(parseHealthCheck("/usr/bin/curl -fsS http://127.0.0.1:8080/healthz"), [
    "/usr/bin/curl",
    "-fsS",
    "http://127.0.0.1:8080/healthz",
  ]);
  assert.deepEqual(parseHealthCheck(`sh -c 'curl -f x || exit 4; echo "$HOME"'`), [
    "sh",
    "-c",
    `curl -f x || exit 4; echo "$HOME"`,
  ]);
  assert.deepEqual(parseHealthCheck(`printf "a \\"b\\" \\\\ $x" a\\ b ''`), [
    "printf",
    `a "b" \\ $x`,
    "a b",
    "",
  ]);
  assert.deepEqual(parseHealthCheck("  grep   -q  x\tf  "), ["grep", "-q", "x", "f"]);
});

test("shell syntax outside quotes, unclosed quotes, relative paths and empty text are refused", () => {
  const refused = (text: string, why: RegExp) =>
    assert.throws(
      () => parseHealthCheck(text),
      (e: unknown) => e instanceof ExtctlError && e.exitCode === 2 && why.test(e.message),
      text,
    );
  for (const [text, c] of [
    ["true; rm -rf /", ";"],
    ["a | b", "|"],
    ["a && b", "&"],
    ["a > /etc/passwd", ">"],
    ["echo $(id)", "$"],
    ["echo `id`", "`"],
    ["ls *", "*"],
    ["cat ~/x", "~"],
    ["a # b", "#"],
  ] as const)
    refused(text, new RegExp(`"\\${c}" would mean something to a shell`));
  refused("sh -c 'exit 1", /' is not closed/);
  refused('sh -c "exit 1', /" is not closed/);
  refused("x \\", /backslash/);
  refused("   ", /names no program/);
  refused("./check.sh", /relative path/);
  refused("bin/check", /relative path/);
});

test("a check passes on 0, fails naming its exit status, its signal, a timeout or a missing program", async () => {
  const ctx = createContext();
  const about = { kind: "sysext", name: "hello", version: "2.0.0", previous: "1.0.0" };
  const env = await runHealthCheck(
    ctx,
    [
      "sh",
      "-c",
      'test "$EXTCTL_EXTENSION $EXTCTL_VERSION $EXTCTL_PREVIOUS_VERSION" = "hello 2.0.0 1.0.0" && test "$PATH" = /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ],
    about,
  );
  assert.equal(env.passed, true, env.summary);
  const failed = await runHealthCheck(ctx, ["sh", "-c", "echo broken >&2; exit 7"], about);
  assert.deepEqual(
    [failed.passed, failed.exitCode, failed.summary],
    [false, 7, "exit status 7: broken"],
  );
  const killed = await runHealthCheck(ctx, ["sh", "-c", "kill -TERM $$"], about);
  assert.deepEqual([killed.passed, killed.signal], [false, "SIGTERM"]);
  const started = Date.now();
  const slow = await runHealthCheck(ctx, ["sleep", "30"], about, 300);
  assert.ok(Date.now() - started < 10_000, "killed at its timeout");
  assert.deepEqual([slow.passed, slow.timedOut], [false, true]);
  assert.match(slow.summary, /timeout/);
  const missing = await runHealthCheck(ctx, ["/nonexistent/check"], about);
  assert.deepEqual([missing.passed, missing.summary], [false, "could not start: no such program"]);
});
