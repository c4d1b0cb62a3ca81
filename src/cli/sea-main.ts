// The entry point of the one-file build (scripts/package-sea.ts): the same main() that
// bin/extctl.cjs runs, started directly (a SEA's main script is CommonJS: no top-level await).
import { main } from "./main.js";

void main(process.argv).then((code) => {
  process.exitCode = code;
});
