// Completion scripts for bash, zsh and fish, written from the command tree (completion-tree.ts):
// commands, aliases, options and their choices are in the script; installed image names come at
// completion time from the hidden `extctl __complete images KIND [PROFILE-FLAG]`.
import { allNodes, type CompletionNode } from "./completion-tree.js";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];

/** The flags that choose a boot profile: disable completes the images enabled in that one. */
const PROFILE_FLAGS = ["--active", "--passive", "--recovery", "--common"];

/** Single-quotes a word for sh/bash/zsh (and fish, which reads '\'' the same way). */
function q(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

function key(path: readonly string[]): string {
  return q(path.join(" "));
}

function valueOptions(tree: CompletionNode): string[] {
  const names = new Set<string>();
  for (const node of allNodes(tree))
    for (const o of node.options) if (o.takesValue) for (const n of o.names) names.add(n);
  return [...names].sort();
}

/** A command printing each word on a line of its own (the words are the tree's, quoted). */
function lines(words: readonly string[]): string {
  return `printf '%s\\n' ${words.map(q).join(" ")}`;
}

/**
 * The bash function; zsh runs the same one through bashcompinit. No word ever reaches the shell
 * as code: `compgen -W` expands its words ($(...), globs), so candidates are read one a line with
 * `read -r`, matched against the word under the cursor as plain text, and put in COMPREPLY quoted
 * with printf %q (an installed image's name is not extctl's to trust: the store is a directory).
 */
function bashFunctions(tree: CompletionNode): string {
  const nodes = allNodes(tree);
  const subLines: string[] = [];
  const subListLines: string[] = [];
  const optLines: string[] = [];
  const choiceLines: string[] = [];
  const argLines: string[] = [];
  const imageLines: string[] = [];
  for (const node of nodes) {
    if (node.subcommands.length) {
      const words = node.subcommands.flatMap((s) => [s.name, ...s.aliases]);
      subListLines.push(`    ${key(node.path)}) ${lines(words)} ;;`);
      for (const s of node.subcommands)
        for (const w of [s.name, ...s.aliases])
          subLines.push(`    ${q(`${node.path.join(" ")}|${w}`)}) echo ${q(s.name)} ;;`);
    }
    optLines.push(`    ${key(node.path)}) ${lines(node.options.flatMap((o) => o.names))} ;;`);
    for (const o of node.options)
      if (o.choices.length)
        for (const n of o.names)
          choiceLines.push(`    ${q(`${node.path.join(" ")}|${n}`)}) ${lines(o.choices)} ;;`);
    node.argumentChoices.forEach((choices, i) => {
      if (choices.length)
        argLines.push(`    ${q(`${node.path.join(" ")}|${i}`)}) ${lines(choices)} ;;`);
    });
    if (node.imageArgument)
      imageLines.push(`    ${key(node.path)}) echo ${node.imageArgument.kind} ;;`);
  }
  const name = tree.name;
  return `# The subcommand a word names under a command path (aliases give the command's own name).
_${name}_subcommand() {
  case "$1|$2" in
${subLines.join("\n")}
  esac
}

_${name}_subcommands() {
  case "$1" in
${subListLines.join("\n")}
  esac
}

_${name}_options() {
  case "$1" in
${optLines.join("\n")}
  esac
}

# Values an option accepts (commander's choices).
_${name}_option_choices() {
  case "$1|$2" in
${choiceLines.join("\n")}
  esac
}

# Values the Nth positional argument accepts.
_${name}_argument_choices() {
  case "$1|$2" in
${argLines.join("\n")}
  esac
}

# The kind of installed image the command's argument names.
_${name}_image_kind() {
  case "$1" in
${imageLines.join("\n")}
  esac
}

# Adds each line of stdin that starts with $1 to COMPREPLY, quoted for the shell (%q): a
# candidate is inserted as the literal text it is, never expanded, and never split.
_${name}_reply() {
  local w quoted
  while IFS= read -r w; do
    [[ -n "$w" ]] || continue
    printf -v quoted '%q' "$w"
    if [[ "$w" == "$1"* || "$quoted" == "$1"* ]]; then
      COMPREPLY+=("$quoted")
    fi
  done
}

_${name}() {
  local cur prev cmdpath="" root="" profile="" args=0 i w sub words
  local value_options=${q(` ${valueOptions(tree).join(" ")} `)}
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if [[ "$value_options" == *" $w "* ]]; then
      [[ "$w" == --root ]] && root="\${COMP_WORDS[i+1]}"
      ((i++))
      continue
    fi
    case "$w" in
      ${PROFILE_FLAGS.join("|")}) profile="$w" ;;
      --root=*) root="\${w#--root=}" ;;
    esac
    [[ "$w" == -* ]] && continue
    sub="$(_${name}_subcommand "$cmdpath" "$w")"
    if [[ -n "$sub" ]]; then
      cmdpath="\${cmdpath:+$cmdpath }$sub"
    else
      ((args++))
    fi
  done
  if [[ "$value_options" == *" $prev "* ]]; then
    words="$(_${name}_option_choices "$cmdpath" "$prev")"
    # Other values are files or directories: the shell's default completion (complete -o default).
    [[ -n "$words" ]] && _${name}_reply "$cur" <<<"$words"
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    _${name}_reply "$cur" <<<"$(_${name}_options "$cmdpath")"
    return 0
  fi
  words="$(_${name}_subcommands "$cmdpath")"
  if [[ -n "$words" ]]; then
    _${name}_reply "$cur" <<<"$words"
    return 0
  fi
  local kind
  kind="$(_${name}_image_kind "$cmdpath")"
  if [[ -n "$kind" && $args -eq 0 ]]; then
    # Only disable narrows to a profile: enable offers what is not enabled there yet.
    [[ "$cmdpath" == *disable ]] || profile=""
    # An array, not \${root:+...}: zsh would pass "--root DIR" as one word.
    local -a call=("\${COMP_WORDS[0]}")
    [[ -n "$root" ]] && call+=(--root "$root")
    call+=(__complete images "$kind")
    [[ -n "$profile" ]] && call+=("$profile")
    # One name a line, as the store has them: read, never evaluated.
    _${name}_reply "$cur" < <("\${call[@]}" 2>/dev/null)
    return 0
  fi
  words="$(_${name}_argument_choices "$cmdpath" "$args")"
  [[ -n "$words" ]] && _${name}_reply "$cur" <<<"$words"
  return 0
}
`;
}

function header(shell: Shell, name: string): string {
  return `# ${shell} completion for ${name}, generated by \`${name} completion ${shell}\` from its command tree.`;
}

export function bashScript(tree: CompletionNode): string {
  return `${header("bash", tree.name)}
# Load it with: source <(${tree.name} completion bash), or put it in
# /usr/share/bash-completion/completions/${tree.name}.
${bashFunctions(tree)}
complete -o default -F _${tree.name} ${tree.name}
`;
}

export function zshScript(tree: CompletionNode): string {
  return `#compdef ${tree.name}
${header("zsh", tree.name)}
# Load it with: source <(${tree.name} completion zsh) after compinit, or put it in a directory of
# $fpath as _${tree.name}. It runs the bash completion through zsh's bashcompinit.
autoload -U +X bashcompinit && bashcompinit
${bashFunctions(tree)}
complete -o default -F _${tree.name} ${tree.name}
`;
}

export function fishScript(tree: CompletionNode): string {
  const name = tree.name;
  const lines = [
    header("fish", name),
    `# Load it with: ${name} completion fish | source, or put it in ~/.config/fish/completions/${name}.fish.`,
    `complete -c ${name} -f`,
  ];
  const fq = (s: string) => q(s.replace(/\s+/g, " ").slice(0, 120));
  for (const node of allNodes(tree)) {
    // fish's helper: the command line holds exactly these subcommands so far.
    const cond = q(`__${name}_at ${node.path.join(" ")}`.trim());
    for (const sub of node.subcommands)
      for (const w of [sub.name, ...sub.aliases])
        lines.push(`complete -c ${name} -n ${cond} -a ${q(w)} -d ${fq(sub.description)}`);
    for (const o of node.options) {
      const parts = [`complete -c ${name} -n ${cond}`];
      for (const n of o.names)
        parts.push(n.startsWith("--") ? `-l ${n.slice(2)}` : `-s ${n.slice(1)}`);
      if (o.takesValue) parts.push(o.choices.length ? `-x -a ${q(o.choices.join(" "))}` : "-r -F");
      parts.push(`-d ${fq(o.description)}`);
      lines.push(parts.join(" "));
    }
    node.argumentChoices.forEach((choices, i) => {
      if (i === 0 && choices.length)
        lines.push(`complete -c ${name} -n ${cond} -a ${q(choices.join(" "))}`);
    });
    if (node.imageArgument)
      lines.push(
        `complete -c ${name} -n ${cond} -a ${q(`(__${name}_images ${node.imageArgument.kind})`)}`,
      );
    if (
      !node.subcommands.length &&
      !node.imageArgument &&
      !node.argumentChoices.some((c) => c.length)
    )
      lines.push(`complete -c ${name} -n ${cond} -F`);
  }
  const subcommandCases = allNodes(tree)
    .filter((n) => n.subcommands.length)
    .map(
      (n) =>
        `      case ${q(n.path.join(" "))}\n        switch $w\n${n.subcommands
          .map(
            (s) =>
              `          case ${[s.name, ...s.aliases].map(q).join(" ")}\n            set path $path ${q(s.name)}`,
          )
          .join("\n")}\n        end`,
    )
    .join("\n");
  return `${lines.slice(0, 2).join("\n")}
# The subcommands on the command line so far, options and their values skipped.
function __${name}_path
    set -l words (commandline -opc)
    set -e words[1]
    set -l path
    set -l skip 0
    for w in $words
        if test $skip = 1
            set skip 0
            continue
        end
        if contains -- $w ${valueOptions(tree).map(q).join(" ")}
            set skip 1
            continue
        end
        switch (string join ' ' $path)
${subcommandCases}
        end
    end
    string join ' ' $path
end

function __${name}_at
    set -l here (__${name}_path)
    test "$here" = "$argv"
end

function __${name}_images
    set -l words (commandline -opc)
    set -l root
    set -l i (contains -i -- --root $words)
    and set root --root $words[(math $i + 1)]
    $words[1] $root __complete images $argv 2>/dev/null
end

${lines.slice(2).join("\n")}
`;
}

export function completionScript(shell: Shell, tree: CompletionNode): string {
  switch (shell) {
    case "bash":
      return bashScript(tree);
    case "zsh":
      return zshScript(tree);
    case "fish":
      return fishScript(tree);
  }
}
