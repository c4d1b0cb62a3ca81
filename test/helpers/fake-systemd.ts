// A fake process runner for unit tests that behaves like `systemd-sysext refresh --root=R`:
// it "merges" every image linked in R/run/extensions by writing R/usr/.systemd-sysext/extensions,
// except images it is told to refuse, for which it logs systemd's debug line. End-to-end tests
// use the real systemd-sysext instead.
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { ProcessRunner, RunOptions, RunResult } from "../../src/util/runner.js";

export class FakeSystemd implements ProcessRunner {
  readonly calls: string[][] = [];
  /** systemd image names to refuse, with the reason systemd would log. */
  readonly refuse = new Map<string, string>();
  /** Make the next N refreshes fail with this stderr. */
  failNext = 0;
  failMessage = "Failed to merge extensions: Device or resource busy";
  /**
   * The sysext hierarchies it merges (markers are written in each), as systemd does with
   * $SYSTEMD_SYSEXT_HIERARCHIES; default /usr. A booted node with extctl's drop-in merges /usr's
   * subdirs one by one.
   */
  sysextHierarchies: string[] = ["/usr"];

  async run(command: string, args: readonly string[], _options?: RunOptions): Promise<RunResult> {
    const argv = [command, ...args];
    this.calls.push(argv);
    if (this.failNext > 0) {
      this.failNext--;
      return {
        command: argv,
        exitCode: 1,
        signal: null,
        stdout: "",
        stderr: this.failMessage + "\n",
      };
    }
    const rootArg = args.find((a) => a.startsWith("--root="));
    const root = rootArg ? rootArg.slice("--root=".length) : "/";
    const isConf = command === "systemd-confext";
    const runtime = path.join(root, isConf ? "run/confexts" : "run/extensions");
    const markers = (isConf ? ["/etc"] : this.sysextHierarchies).map((h) =>
      path.join(root, h, isConf ? ".systemd-confext" : ".systemd-sysext"),
    );
    const names = (await readdir(runtime).catch(() => [] as string[])).filter((n) =>
      n.endsWith(".raw"),
    );
    const merged: string[] = [];
    const log: string[] = [];
    for (const file of names) {
      const name = file.slice(0, -4);
      const reason = this.refuse.get(name);
      if (reason) log.push(`Extension '${name}' ${reason}.`);
      else merged.push(name);
    }
    for (const marker of markers) {
      await rm(marker, { recursive: true, force: true });
      if (merged.length > 0) {
        await mkdir(marker, { recursive: true });
        await writeFile(
          path.join(marker, isConf ? "confexts" : "extensions"),
          merged.map((n) => n + "\n").join(""),
        );
      }
    }
    return { command: argv, exitCode: 0, signal: null, stdout: "", stderr: log.join("\n") };
  }

  get refreshes(): number {
    return this.calls.filter((c) => c[1] === "refresh").length;
  }
}
