// extctl as a library: every operation the CLI offers, callable with plain arguments.
export { ExtctlError, UsageError } from "./util/errors.js";
export { Root } from "./util/root.js";
export { createContext, type Context } from "./util/context.js";
export * from "./domain/store/layout.js";
