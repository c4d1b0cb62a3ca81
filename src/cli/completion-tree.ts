// The command tree shell completion is generated from, read out of commander's own program: every
// command's name, aliases and options, which options take a value and which values they accept.
import type { Argument, Command, Option } from "commander";

export interface CompletionOption {
  /** Every spelling: "-o", "--output". */
  names: string[];
  takesValue: boolean;
  choices: string[];
  description: string;
}

export interface CompletionNode {
  /** Names from the program down: [] for the program, ["sysext", "enable"] for that command. */
  path: string[];
  name: string;
  aliases: string[];
  description: string;
  options: CompletionOption[];
  /** Choices of each positional argument, in order ([] where any word goes). */
  argumentChoices: string[][];
  /** The positional argument names an installed image (enable, disable, remove). */
  imageArgument?: { kind: "sysext" | "confext" };
  subcommands: CompletionNode[];
}

/** The commands whose argument is the name of an installed image of their parent's kind. */
const IMAGE_COMMANDS = new Set(["enable", "disable", "remove", "upgrade", "rollback", "versions"]);
const KINDS = new Set(["sysext", "confext"]);

// commander keeps these on its objects without typing them in its declarations.
type HiddenCommand = Command & { _hidden?: boolean };
type ArgumentWithChoices = Argument & { argChoices?: string[] };
type OptionWithChoices = Option & { argChoices?: string[] };

function optionOf(option: OptionWithChoices): CompletionOption {
  return {
    names: [option.short, option.long].filter((n): n is string => typeof n === "string"),
    takesValue: option.required || option.optional,
    choices: option.argChoices ?? [],
    description: option.description,
  };
}

const HELP: CompletionOption = {
  names: ["-h", "--help"],
  takesValue: false,
  choices: [],
  description: "display help for command",
};

export function completionTree(program: Command): CompletionNode {
  return nodeOf(program, []);
}

function nodeOf(command: Command, path: string[]): CompletionNode {
  const options = (command.options as readonly OptionWithChoices[])
    .filter((o) => !o.hidden)
    .map(optionOf);
  options.push(HELP);
  const parent = path[path.length - 2];
  const node: CompletionNode = {
    path,
    name: path.length === 0 ? command.name() : (path[path.length - 1] as string),
    aliases: command.aliases(),
    description: command.description(),
    options,
    argumentChoices: (command.registeredArguments as readonly ArgumentWithChoices[]).map(
      (a) => a.argChoices ?? [],
    ),
    subcommands: (command.commands as readonly HiddenCommand[])
      .filter((c) => !c._hidden)
      .map((c) => nodeOf(c, [...path, c.name()])),
  };
  if (parent !== undefined && KINDS.has(parent) && IMAGE_COMMANDS.has(node.name))
    node.imageArgument = { kind: parent as "sysext" | "confext" };
  return node;
}

/** Every node of the tree, the program first. */
export function allNodes(root: CompletionNode): CompletionNode[] {
  return [root, ...root.subcommands.flatMap(allNodes)];
}
