// Image policy parsing (systemd syntax and extctl's short names) and where a node's policy
// comes from, in precedence order.
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { createContext } from "../../../../src/util/context.js";
import { silentLogger } from "../../../../src/util/log.js";
import {
  imagePolicyInUnit,
  parseImagePolicy,
  policyAllows,
  resolvePolicy,
} from "../../../../src/domain/trust/policy.js";
import { tempRoot } from "../../../helpers/tmp.js";

test("Kairos's trusted-boot policy allows only signed root and usr partitions", () => {
  const p = parseImagePolicy("root=signed+absent:usr=signed+absent");
  assert.equal(p.name, "signed");
  assert.equal(policyAllows(p, "root", "signed"), true);
  assert.equal(policyAllows(p, "root", "verity"), false);
  assert.equal(policyAllows(p, "usr", "unprotected"), false);
});

test("Kairos's non-UKI policy allows verity and, through it, signed images, but not unprotected ones", () => {
  const p = parseImagePolicy("root=verity+absent:usr=verity+absent");
  assert.equal(p.name, "verity");
  assert.equal(policyAllows(p, "root", "verity"), true);
  assert.equal(policyAllows(p, "usr", "signed"), true);
  assert.equal(policyAllows(p, "root", "unprotected"), false);
});

test("short names, `*`, `-` and the `=` default are understood", () => {
  assert.equal(parseImagePolicy("signed").text, "root=signed+absent:usr=signed+absent");
  assert.equal(parseImagePolicy("any").name, "any");
  assert.equal(policyAllows(parseImagePolicy("*"), "root", "unprotected"), true);
  assert.equal(policyAllows(parseImagePolicy("-"), "root", "signed"), false);
  const dflt = parseImagePolicy("=verity+signed:root=signed");
  assert.equal(policyAllows(dflt, "usr", "verity"), true);
  assert.equal(policyAllows(dflt, "root", "verity"), false);
  assert.equal(policyAllows(parseImagePolicy("root=open"), "root", "unprotected"), true);
  // Unlisted partitions are ignored (unused+absent), as systemd parses it.
  assert.equal(policyAllows(parseImagePolicy("root=signed"), "usr", "signed"), false);
  assert.equal(parseImagePolicy("root=signed+read-only-on").name, "custom");
});

test("bad policies are usage errors that say what is wrong", () => {
  assert.throws(() => parseImagePolicy("root=trusted"), /"trusted" is not a policy flag/);
  assert.throws(() => parseImagePolicy("rooot=signed"), /not a partition designator/);
  assert.throws(() => parseImagePolicy("signed+verity"), /has no "="/);
  assert.throws(() => parseImagePolicy(""), /empty/);
});

test("the last ExecStart= of a drop-in decides the --image-policy, quoted or not", () => {
  assert.equal(
    imagePolicyInUnit(
      '[Service]\nExecStart=\nExecStart=systemd-sysext refresh --image-policy="root=signed+absent:usr=signed+absent"\n',
    ),
    "root=signed+absent:usr=signed+absent",
  );
  assert.equal(
    imagePolicyInUnit("ExecStart=systemd-sysext refresh --image-policy root=verity\n"),
    "root=verity",
  );
  assert.equal(imagePolicyInUnit("ExecStart=x --image-policy=a=b\nExecStart=\n"), undefined);
});

function ctxFor(root: string) {
  return createContext({ root, log: silentLogger });
}

test("policy resolution: --policy, then /etc/extctl/policy, then sysext drop-ins, then trusted boot, then any", async (t) => {
  const root = await tempRoot(t);
  const ctx = ctxFor(root);
  assert.deepEqual(
    { name: (await resolvePolicy(ctx)).policy.name, source: (await resolvePolicy(ctx)).source },
    { name: "any", source: "systemd default" },
  );

  await mkdir(path.join(root, "proc"), { recursive: true });
  await writeFile(
    path.join(root, "proc/cmdline"),
    "BOOT_IMAGE=/vmlinuz rd.immucore.uki console=ttyS0\n",
  );
  let r = await resolvePolicy(ctx);
  assert.equal(r.policy.name, "signed");
  assert.match(r.source, /rd\.immucore\.uki/);
  const cmdline = path.join(root, "other-cmdline");
  await writeFile(cmdline, "quiet rd.immucore.ukix\n");
  assert.equal((await resolvePolicy(ctx, undefined, { cmdlineFile: cmdline })).policy.name, "any");

  const dropins = path.join(root, "usr/lib/systemd/system/systemd-sysext.service.d");
  await mkdir(dropins, { recursive: true });
  await writeFile(
    path.join(dropins, "kairos.conf"),
    "[Service]\nExecStart=\nExecStart=systemd-sysext refresh --image-policy=root=verity+absent:usr=verity+absent\n",
  );
  r = await resolvePolicy(ctx);
  assert.equal(r.policy.name, "verity");
  assert.equal(r.source, "/usr/lib/systemd/system/systemd-sysext.service.d/kairos.conf");
  // The same name under /etc masks the /usr/lib one.
  const etcDropins = path.join(root, "etc/systemd/system/systemd-sysext.service.d");
  await mkdir(etcDropins, { recursive: true });
  await writeFile(
    path.join(etcDropins, "kairos.conf"),
    "[Service]\nExecStart=\nExecStart=systemd-sysext refresh --image-policy=*\n",
  );
  assert.equal((await resolvePolicy(ctx)).policy.name, "any");

  await mkdir(path.join(root, "etc/extctl"), { recursive: true });
  await writeFile(path.join(root, "etc/extctl/policy"), "# our nodes\nsigned\n");
  r = await resolvePolicy(ctx);
  assert.deepEqual([r.policy.name, r.source], ["signed", "/etc/extctl/policy"]);

  r = await resolvePolicy(ctx, "verity");
  assert.deepEqual([r.policy.name, r.source], ["verity", "--policy"]);

  await writeFile(path.join(root, "etc/extctl/policy"), "root=bogus\n");
  await assert.rejects(
    resolvePolicy(ctx),
    /\/etc\/extctl\/policy: the image policy "root=bogus" is invalid/,
  );
});

test("a trusted boot is also seen in $SYSTEMD_PROC_CMDLINE; --cmdline still wins over it", async (t) => {
  const root = await tempRoot(t);
  await mkdir(path.join(root, "proc"), { recursive: true });
  await writeFile(path.join(root, "proc/cmdline"), "quiet\n");
  const env = { SYSTEMD_PROC_CMDLINE: "console=ttyS0 rd.immucore.uki" };
  const ctx = createContext({ root, log: silentLogger, env });
  const r = await resolvePolicy(ctx);
  assert.equal(r.policy.name, "signed");
  assert.match(r.source, /rd\.immucore\.uki/);
  const cmdline = path.join(root, "plain-cmdline");
  await writeFile(cmdline, "quiet\n");
  assert.equal((await resolvePolicy(ctx, undefined, { cmdlineFile: cmdline })).policy.name, "any");
  assert.equal(
    (await resolvePolicy(createContext({ root, log: silentLogger, env: {} }))).policy.name,
    "any",
  );
});
