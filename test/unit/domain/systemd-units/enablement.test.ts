// Reading [Install] sections and the links `systemctl enable` makes from them.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  enableLinks,
  parseInstallSection,
} from "../../../../src/domain/systemd-units/enablement.js";

test("the [Install] section's lists: repeated keys add, an empty one resets, other sections are ignored", () => {
  const install = parseInstallSection(
    [
      "[Unit]",
      "WantedBy=not-this.target",
      "[Install]",
      "WantedBy=a.target b.target",
      "# a comment",
      "WantedBy=c.target",
      "RequiredBy=x.target",
      "RequiredBy=",
      "RequiredBy=y.target",
      "Alias=other.service",
      "Also=ignored.service",
      "[Service]",
      "WantedBy=nor-this.target",
    ].join("\n"),
  );
  assert.deepEqual(install, {
    wantedBy: ["a.target", "b.target", "c.target"],
    requiredBy: ["y.target"],
    alias: ["other.service"],
  });
});

test("systemd-sysext.service's section gives the sysinit.target.wants link systemctl makes", () => {
  const install = parseInstallSection(
    "[Service]\nType=oneshot\n\n[Install]\nWantedBy=sysinit.target\n",
  );
  assert.deepEqual(
    enableLinks(
      "systemd-sysext.service",
      "/usr/lib/systemd/system/systemd-sysext.service",
      install,
    ),
    [
      {
        path: "/etc/systemd/system/sysinit.target.wants/systemd-sysext.service",
        target: "/usr/lib/systemd/system/systemd-sysext.service",
      },
    ],
  );
});

test("a target name that could leave /etc/systemd/system is not linked", () => {
  const install = {
    wantedBy: ["../../evil.target", "ok.target"],
    requiredBy: [],
    alias: ["a/b.service"],
  };
  assert.deepEqual(
    enableLinks("u.service", "/usr/lib/systemd/system/u.service", install).map((l) => l.path),
    ["/etc/systemd/system/ok.target.wants/u.service"],
  );
});
