// What every operation needs from its caller: the root it works on, how to run programs, where
// to log and how to show progress. The CLI builds one from flags; tests build their own.
import { StderrLogger, type Logger } from "./log.js";
import { makeProgressFactory, type ProgressFactory } from "./progress.js";
import { Root } from "./root.js";
import { SpawnRunner, formatCommand, type ProcessRunner } from "./runner.js";

export interface Context {
  root: Root;
  runner: ProcessRunner;
  log: Logger;
  progress: ProgressFactory;
  env: NodeJS.ProcessEnv;
}

export function createContext(
  options: {
    root?: string;
    log?: Logger;
    runner?: ProcessRunner;
    progress?: ProgressFactory;
    env?: NodeJS.ProcessEnv;
  } = {},
): Context {
  const log = options.log ?? new StderrLogger();
  return {
    root: new Root(options.root ?? "/"),
    log,
    runner: options.runner ?? new SpawnRunner((argv) => log.debug(`$ ${formatCommand(argv)}`)),
    progress: options.progress ?? makeProgressFactory(log),
    env: options.env ?? process.env,
  };
}
