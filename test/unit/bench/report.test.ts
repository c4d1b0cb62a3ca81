// bench/run.sh writes docs/benchmarks.md's results table from the same BENCH lines as bench/RESULTS.md:
// only the block between its markers changes, and a document without them is an error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseBenchLines, withResultsBlock, type MachineInfo } from "../../../bench/lib.js";

const INFO: MachineInfo = { date: "2026-12-03T00:00:00Z", machine: "Linux x64", node: "v20.20.2" };
const RESULTS = parseBenchLines(
  [
    'BENCH {"name":"start-up: extctl status","extctl_s":0.08,"peer":"node -e 0","peer_s":0.064,"ratio":1.25,"goal":1.3,"runs":15}',
    'BENCH {"name":"list","extctl_s":0.12,"peer":"a | b","peer_s":0.08,"ratio":1.5,"goal":1.3,"runs":7}',
  ].join("\n"),
);

test("the README's results block is replaced by this run's table, and nothing else", () => {
  const readme = [
    "# Performance",
    "<!-- bench results: written by bash bench/run.sh -->",
    "| old | table |",
    "<!-- /bench results -->",
    "What the misses mean.",
  ].join("\n");
  const out = withResultsBlock(readme, RESULTS, INFO);
  assert.ok(
    out.startsWith("# Performance\n<!-- bench results: written by bash bench/run.sh -->\n"),
  );
  assert.ok(out.endsWith("<!-- /bench results -->\nWhat the misses mean."));
  assert.doesNotMatch(out, /old \| table/);
  assert.match(out, /- date: 2026-12-03T00:00:00Z/);
  assert.match(
    out,
    /\| start-up: extctl status \| 0\.08 \| node -e 0 \| 0\.064 \| 1\.25 \| 1\.3 \| yes \|/,
  );
  // A shell pipeline as peer keeps its "|" inside the cell.
  assert.match(out, /\| list \| 0\.12 \| a \\\| b \| 0\.08 \| 1\.5 \| 1\.3 \| \*\*no\*\* \|/);
  assert.equal(withResultsBlock(out, RESULTS, INFO), out, "writing it twice changes nothing");
});

test("a README without the markers is refused, not appended to", () => {
  assert.throws(() => withResultsBlock("# no markers\n", RESULTS, INFO), /no "<!-- bench results/);
});
