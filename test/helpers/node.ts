// A throwaway node for operation tests: a temp root, a Context with a fake systemd and a memory
// logger, and helpers to put images in the store and read links back.
import { chmod, mkdir, readlink, writeFile, lstat } from "node:fs/promises";
import path from "node:path";
import type { TestContext } from "node:test";
import { createContext, type Context } from "../../src/util/context.js";
import { MemoryLogger } from "../../src/util/log.js";
import { noProgress } from "../../src/util/progress.js";
import { LAYOUTS, type ExtensionKind } from "../../src/domain/store/layout.js";
import { FakeSystemd } from "./fake-systemd.js";
import { tempRoot } from "./tmp.js";

export interface TestNode {
  dir: string;
  ctx: Context;
  systemd: FakeSystemd;
  log: MemoryLogger;
  host(nodePath: string): string;
  addImage(kind: ExtensionKind, name: string, content?: string, mode?: number): Promise<string>;
  boot(state: string): Promise<void>;
  link(nodePath: string): Promise<string | undefined>;
  exists(nodePath: string): Promise<boolean>;
}

export async function testNode(t: TestContext): Promise<TestNode> {
  const dir = await tempRoot(t);
  const systemd = new FakeSystemd();
  const log = new MemoryLogger();
  const ctx = createContext({
    root: dir,
    runner: systemd,
    log,
    progress: () => noProgress,
    env: {},
  });
  const host = (p: string) => path.join(dir, p);
  return {
    dir,
    ctx,
    systemd,
    log,
    host,
    async addImage(kind, name, content = "image", mode = 0o644) {
      const store = host(LAYOUTS[kind].store);
      await mkdir(store, { recursive: true });
      await writeFile(path.join(store, name), content);
      await chmod(path.join(store, name), mode);
      return path.join(store, name);
    },
    async boot(state) {
      await mkdir(host("/run/cos"), { recursive: true });
      await writeFile(host(`/run/cos/${state}_mode`), "");
    },
    async link(nodePath) {
      // Links under --root are relative; report them as the node path they stand for.
      const target = await readlink(host(nodePath)).catch(() => undefined);
      if (target === undefined || target.startsWith("/")) return target;
      return path.posix.join(path.posix.dirname(nodePath), target);
    },
    async exists(nodePath) {
      return lstat(host(nodePath)).then(
        () => true,
        () => false,
      );
    },
  };
}
