// `extctl completion bash|zsh|fish` loaded into the real shells: bash's `complete -p` and the
// completion function itself (what TAB runs) for commands, aliases, options, option choices and
// the names of installed images (read from a real store through `extctl __complete`); zsh runs the
// same function through bashcompinit, and fish's own `complete --do-complete` answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { EXTCTL_BIN } from "../helpers/cli.js";
import { makeSampleImage } from "../helpers/images.js";
import { requirePeers } from "../helpers/peers.js";
import { tempDir, tempRoot } from "../helpers/tmp.js";

const STORE = "var/lib/kairos/extensions";
/** Completion does not depend on systemd: zsh and fish are tested on the host, not in every lane. */
const IN_LANE = process.env.EXTCTL_LANE ? "zsh and fish are tested on the host only" : false;

/** A root whose store holds three sysexts (one enabled in passive) and one confext. */
async function storeRoot(t: Parameters<typeof tempRoot>[0]): Promise<string> {
  const root = await tempRoot(t);
  const work = await tempDir(t);
  for (const [dir, name] of [
    [STORE, "tailscale.sysext.raw"],
    [STORE, "tools.sysext.raw"],
    [STORE, "nvidia.sysext.raw"],
    ["var/lib/kairos/confexts", "motd.confext.raw"],
  ] as const) {
    const file = await makeSampleImage(work, {
      fileName: name,
      release: "ID=_any\n",
      kind: name.includes("confext") ? "confext" : "sysext",
      files: { [name.includes("confext") ? "etc/motd" : "usr/share/x"]: "x\n" },
    });
    await mkdir(path.join(root, dir), { recursive: true });
    await writeFile(path.join(root, dir, name), await readFile(file));
  }
  await mkdir(path.join(root, STORE, "passive"), { recursive: true });
  await symlink(`/${STORE}/tools.sysext.raw`, path.join(root, STORE, "passive/tools.sysext.raw"));
  return root;
}

/** A PATH whose `extctl` is this checkout's, as an installed one would be. */
async function binDir(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const bin = await tempDir(t);
  await symlink(EXTCTL_BIN, path.join(bin, "extctl"));
  return bin;
}

function shell(cmd: string, args: string[], script: string, bin: string) {
  const r = spawnSync(cmd, [...args, script], {
    encoding: "utf8",
    env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}`, NO_COLOR: "1" },
    timeout: 60_000,
  });
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the completion function for each command line (the word under the cursor last). */
function bashCompletions(
  bin: string,
  lines: string[][],
  loader = "source <(extctl completion bash)",
) {
  const calls = lines.map((words) => `_try ${words.map((w) => `'${w}'`).join(" ")}`).join("\n");
  const script = `${loader}
_try() {
  COMP_WORDS=("$@"); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); COMP_LINE="$*"; COMP_POINT=\${#COMP_LINE}
  COMPREPLY=()
  _extctl extctl "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
  echo "\${COMPREPLY[*]}"
}
complete -p extctl
${calls}`;
  const r = shell("bash", ["-c"], script, bin);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "", "completion prints nothing on stderr");
  const [spec, ...replies] = r.stdout.split("\n");
  return {
    spec,
    replies: replies.slice(0, lines.length).map((l) => l.split(" ").filter(Boolean).sort()),
  };
}

test("bash: commands, aliases, options, choices and installed image names complete for real", async (t) => {
  if (!requirePeers(t, ["bash", "mksquashfs"], { root: true })) return;
  const root = await storeRoot(t);
  const bin = await binDir(t);
  const cases: [string[], string[]][] = [
    [
      ["extctl", "sys"],
      ["systemd", "sysext"],
    ],
    [
      ["extctl", "c"],
      ["catalog", "check", "completion", "confext"],
    ],
    [
      ["extctl", "sysext", "d"],
      ["disable", "download"],
    ],
    [
      ["extctl", "sysext", "enable", "--p"],
      ["--passive", "--policy"],
    ],
    [
      ["extctl", "sysext", "enable", "--refresh", ""],
      ["auto", "none", "sysext", "systemctl"],
    ],
    [
      ["extctl", "completion", ""],
      ["bash", "fish", "zsh"],
    ],
    [
      ["extctl", "build", ""],
      ["confext", "sysext"],
    ],
    [
      ["extctl", "--root", root, "sysext", "enable", ""],
      ["nvidia", "tailscale", "tools"],
    ],
    [
      ["extctl", "--root", root, "sysext", "enable", "--active", "t"],
      ["tailscale", "tools"],
    ],
    // disable with a profile offers what that profile has enabled.
    [["extctl", "--root", root, "sysext", "disable", "--passive", ""], ["tools"]],
    [
      ["extctl", "--root", root, "sysext", "remove", "--now", ""],
      ["nvidia", "tailscale", "tools"],
    ],
    [["extctl", "--root", root, "confext", "remove", ""], ["motd"]],
    // An alias leads to the same command: download takes a URI, not an image name.
    // Checked below against `sysext install --help`.
    [["extctl", "--root", root, "sysext", "download", "--"], []],
    // After the image name nothing more is offered from the store.
    [["extctl", "--root", root, "sysext", "enable", "tools", ""], []],
    [
      ["extctl", "systemd", "install", "--"],
      [
        "--auto-upgrade",
        "--extctl",
        "--help",
        "--json",
        "--metrics-dir",
        "--no-trusted",
        "--on-calendar",
        "--policy",
        "--systemd",
        "--trusted",
        "--uninstall",
      ],
    ],
  ];
  const { spec, replies } = bashCompletions(
    bin,
    cases.map(([words]) => words),
  );
  assert.equal(spec, "complete -o default -F _extctl extctl");
  cases.forEach(([words, want], i) => {
    if (words.includes("download")) {
      // The options of `sysext install`, whatever they are, and no image names.
      const help = spawnSync(process.execPath, [EXTCTL_BIN, "sysext", "install", "--help"], {
        encoding: "utf8",
      }).stdout;
      for (const opt of replies[i] ?? [])
        assert.ok(help.includes(opt), `${opt} is an option of sysext install`);
      assert.ok((replies[i] ?? []).includes("--json"));
      return;
    }
    assert.deepEqual(replies[i], want.sort(), words.join(" "));
  });
});

test("bash: every command and option in --help is offered (the script is made from the tree)", async (t) => {
  if (!requirePeers(t, ["bash"])) return;
  const bin = await binDir(t);
  const help = spawnSync(process.execPath, [EXTCTL_BIN, "--help"], { encoding: "utf8" }).stdout;
  const commands = [...help.matchAll(/^ {2}([a-z][\w-]*)/gm)]
    .map((m) => m[1] as string)
    .filter((c) => c !== "help");
  const sub = spawnSync(process.execPath, [EXTCTL_BIN, "verify", "--help"], {
    encoding: "utf8",
  }).stdout;
  const verifyOptions = [...sub.matchAll(/(--[a-z][\w-]*)/g)].map((m) => m[1] as string);
  const { replies } = bashCompletions(bin, [
    ["extctl", ""],
    ["extctl", "verify", "--"],
  ]);
  assert.deepEqual(replies[0], [...commands].sort());
  for (const o of verifyOptions) assert.ok(replies[1]?.includes(o), `verify ${o}`);
  assert.ok(!replies[0]?.includes("__complete"), "the hidden command stays hidden");
});

test("zsh: the same completion through bashcompinit", { skip: IN_LANE }, async (t) => {
  if (!requirePeers(t, ["zsh", "mksquashfs"], { root: true })) return;
  const root = await storeRoot(t);
  const bin = await binDir(t);
  const script = `autoload -U compinit && compinit -u
source <(extctl completion zsh)
_try() {
  local -a COMP_WORDS COMPREPLY; local COMP_CWORD
  # As zsh's _bash_complete calls it: 0-based words; zsh's compgen leaves the matching against
  # the word under the cursor to compadd, done here by the same pattern.
  setopt localoptions ksharrays
  COMP_WORDS=("$@"); (( COMP_CWORD = $# - 1 ))
  _extctl
  print -r -- "\${(M)COMPREPLY[@]:#\${COMP_WORDS[COMP_CWORD]}*}"
}
_try extctl sysext en
_try extctl --root ${root} sysext enable ''
_try extctl completion ''`;
  const r = shell("zsh", ["-f", "-c"], script, bin);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split("\n")
    .map((l) => l.split(" ").filter(Boolean).sort());
  assert.deepEqual(lines, [["enable"], ["nvidia", "tailscale", "tools"], ["bash", "fish", "zsh"]]);
});

test(
  "fish: complete --do-complete answers from the generated script",
  { skip: IN_LANE },
  async (t) => {
    if (!requirePeers(t, ["fish", "mksquashfs"], { root: true })) return;
    const root = await storeRoot(t);
    const bin = await binDir(t);
    const script = `extctl completion fish | source
complete --do-complete 'extctl sysext en'
echo ---
complete --do-complete 'extctl --root ${root} sysext enable '
echo ---
complete --do-complete 'extctl systemd install --pol'`;
    const r = shell("fish", ["--no-config", "-c"], script, bin);
    assert.equal(r.code, 0, r.stderr);
    const [sub, images, opts] = r.stdout.split("---\n").map((block) =>
      block
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split("\t")[0]),
    );
    assert.deepEqual(sub, ["enable"]);
    assert.deepEqual(images?.sort(), ["nvidia", "tailscale", "tools"]);
    assert.deepEqual(opts, ["--policy"]);
  },
);

// Issue 24 item 1: names placed in the store by hand (extctl itself refuses them), which the old
// script handed to `compgen -W`: it ran $(...) as root when TAB was pressed, globbed `*`, and a
// line break made two candidates.
const HOSTILE = "x$(touch${IFS}pwn).raw";
const HOSTILE_SHORT = "x$(touch${IFS}pwn)";
const GLOB = "g*.raw";
const SPLIT = "split\nme.raw";

async function hostileRoot(t: Parameters<typeof tempRoot>[0]): Promise<string> {
  const root = await tempRoot(t);
  const work = await tempDir(t);
  const image = await makeSampleImage(work, {
    fileName: "plain.sysext.raw",
    release: "ID=_any\n",
    files: { "usr/share/x": "x\n" },
  });
  await mkdir(path.join(root, STORE), { recursive: true });
  for (const name of [HOSTILE, GLOB, SPLIT, "plain.raw"])
    await writeFile(path.join(root, STORE, name), await readFile(image));
  return root;
}

/** Runs `script` in `shellCmd` with `cwd` as its directory: a command that ran leaves ./pwn. */
function hostileRun(cmd: string, args: string[], script: string, bin: string, cwd: string) {
  const r = spawnSync(cmd, [...args, script], {
    encoding: "utf8",
    cwd,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}`, NO_COLOR: "1" },
    timeout: 60_000,
  });
  return { code: r.status ?? 128, stdout: r.stdout, stderr: r.stderr };
}

/** The names `extctl __complete images sysext` must offer: the hostile ones literally, no split. */
const OFFERED = ["g*", "plain", HOSTILE_SHORT].sort();

test("bash: a hostile installed name is completed as literal text, never run, globbed or split", async (t) => {
  if (!requirePeers(t, ["bash", "mksquashfs"], { root: true })) return;
  const root = await hostileRoot(t);
  const bin = await binDir(t);
  const cwd = await tempDir(t);
  // A file the glob g* would match if the shell expanded it.
  await writeFile(path.join(cwd, "gotcha"), "");
  // Each candidate as COMPREPLY holds it (quoted), then as the word the shell reads back when
  // it is on the command line (eval of the quoted text: the literal name again).
  const script = `source <(extctl completion bash)
_try() {
  COMP_WORDS=("$@"); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 ))
  COMPREPLY=()
  _extctl extctl "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
  local c
  for c in "\${COMPREPLY[@]}"; do eval "printf 'word=%s\\\\n' $c"; done
  echo ---
}
_try extctl --root '${root}' sysext enable ''
_try extctl --root '${root}' sysext enable 'x'
_try extctl --root '${root}' sysext remove 'split'`;
  const r = hostileRun("bash", ["-c"], script, bin, cwd);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  const [all, x, split] = r.stdout.split("---\n").map((b) =>
    b
      .split("\n")
      .filter(Boolean)
      .map((l) => l.replace(/^word=/, "")),
  );
  assert.deepEqual(all?.sort(), OFFERED);
  assert.deepEqual(x, [HOSTILE_SHORT]);
  assert.deepEqual(split, [], "a name with a line break is not offered in pieces");
  await assert.rejects(readFile(path.join(cwd, "pwn")), "completion ran the command in the name");
});

test(
  "zsh: a hostile installed name is completed as literal text, never run or split",
  { skip: IN_LANE },
  async (t) => {
    if (!requirePeers(t, ["zsh", "mksquashfs"], { root: true })) return;
    const root = await hostileRoot(t);
    const bin = await binDir(t);
    const cwd = await tempDir(t);
    const script = `autoload -U compinit && compinit -u
source <(extctl completion zsh)
_try() {
  local -a COMP_WORDS COMPREPLY; local COMP_CWORD
  setopt localoptions ksharrays
  COMP_WORDS=("$@"); (( COMP_CWORD = $# - 1 ))
  _extctl
  local c
  for c in "\${COMPREPLY[@]}"; do eval "print -r -- word=$c"; done
  print -- ---
}
_try extctl --root '${root}' sysext enable ''
_try extctl --root '${root}' sysext remove 'split'`;
    const r = hostileRun("zsh", ["-f", "-c"], script, bin, cwd);
    assert.equal(r.code, 0, r.stderr);
    const [all, split] = r.stdout.split("---\n").map((b) =>
      b
        .split("\n")
        .filter(Boolean)
        .map((l) => l.replace(/^word=/, "")),
    );
    assert.deepEqual(all?.sort(), OFFERED);
    assert.deepEqual(split, []);
    await assert.rejects(readFile(path.join(cwd, "pwn")), "completion ran the command in the name");
  },
);

test(
  "fish: a hostile installed name is completed as literal text, never run or split",
  { skip: IN_LANE },
  async (t) => {
    if (!requirePeers(t, ["fish", "mksquashfs"], { root: true })) return;
    const root = await hostileRoot(t);
    const bin = await binDir(t);
    const cwd = await tempDir(t);
    const script = `extctl completion fish | source
complete --do-complete 'extctl --root ${root} sysext enable '
echo ---
complete --do-complete 'extctl --root ${root} sysext remove split'`;
    const r = hostileRun("fish", ["--no-config", "-c"], script, bin, cwd);
    assert.equal(r.code, 0, r.stderr);
    const [all, split] = r.stdout.split("---\n").map((b) =>
      b
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split("\t")[0]),
    );
    assert.deepEqual(all?.sort(), OFFERED);
    assert.deepEqual(split, []);
    await assert.rejects(readFile(path.join(cwd, "pwn")), "completion ran the command in the name");
  },
);
