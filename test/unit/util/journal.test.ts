// Under a systemd unit, stderr lines carry sd-daemon priorities; anywhere else they do not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stderrIsJournal } from "../../../src/util/journal.js";
import { EXTCTL_BIN } from "../../helpers/cli.js";

test("stderr is the journal only when JOURNAL_STREAM names its device and inode", () => {
  const st = fstatSync(2, { bigint: true });
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }), true);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1n}` }), false);
  assert.equal(stderrIsJournal({}), false);
  assert.equal(stderrIsJournal({ JOURNAL_STREAM: "garbage" }), false);
});

test("the CLI prefixes each error line with <3> on the journal stream, and nothing elsewhere", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "extctl-journal-"));
  try {
    const log = path.join(dir, "stderr");
    const run = (journal: boolean) => {
      const fd = openSync(log, "w");
      const st = fstatSync(fd, { bigint: true });
      const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
      if (journal) env.JOURNAL_STREAM = `${st.dev}:${st.ino}`;
      else delete env.JOURNAL_STREAM;
      const r = spawnSync(process.execPath, [EXTCTL_BIN, "--root", dir, "sysext", "enable", "x"], {
        stdio: ["ignore", "ignore", fd],
        env,
      });
      closeSync(fd);
      return { code: r.status, text: readFileSync(log, "utf8") };
    };
    const journal = run(true);
    assert.equal(journal.code, 2);
    assert.ok(journal.text.length > 0);
    for (const line of journal.text.trimEnd().split("\n")) assert.match(line, /^<3>extctl: /);
    const plain = run(false);
    assert.match(plain.text, /^extctl: /);
    assert.doesNotMatch(plain.text, /<\d>/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
