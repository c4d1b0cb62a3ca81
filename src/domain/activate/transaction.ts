// Link changes a command makes, recorded so they can be undone when the refresh that should
// activate them fails (spec/kairos.md "ours" 4): the node ends as it was before the command.
import { readlink, symlink, unlink } from "node:fs/promises";
import type { Root } from "../../util/root.js";
import { symlinkAtomic } from "../../util/atomic.js";

type Change =
  | { kind: "created"; nodePath: string; previousTarget?: string }
  | { kind: "removed"; nodePath: string; target: string };

export class LinkTransaction {
  private readonly changes: Change[] = [];

  constructor(private readonly root: Root) {}

  get changed(): boolean {
    return this.changes.length > 0;
  }

  created(nodePath: string, previousTarget?: string): void {
    this.changes.push(
      previousTarget === undefined
        ? { kind: "created", nodePath }
        : { kind: "created", nodePath, previousTarget },
    );
  }

  removed(nodePath: string, target: string): void {
    this.changes.push({ kind: "removed", nodePath, target });
  }

  /** Reads a link's target before it is replaced or removed. */
  async targetOf(nodePath: string): Promise<string | undefined> {
    try {
      return await readlink(await this.root.writePath(nodePath, { leaf: "entry" }));
    } catch {
      return undefined;
    }
  }

  /** Undoes every change, newest first; returns the problems it met (best effort). */
  async rollback(): Promise<string[]> {
    const problems: string[] = [];
    for (const change of [...this.changes].reverse()) {
      try {
        const host = await this.root.writePath(change.nodePath, { leaf: "entry" });
        if (change.kind === "created") {
          if (change.previousTarget === undefined) await unlink(host);
          else await symlinkAtomic(change.previousTarget, host);
        } else {
          await symlink(change.target, host);
        }
      } catch (e) {
        problems.push(`${change.nodePath}: ${(e as Error).message}`);
      }
    }
    this.changes.length = 0;
    return problems;
  }
}
