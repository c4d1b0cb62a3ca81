// Bytes into a file at disk speed from views that are only lent (see http1.ts): each view is
// hashed and copied into one of a few large slabs (or read straight into one, via space()), a
// full slab goes out in one pwrite while the next one fills, and the kernel is asked to write back every 32 MiB so that the final fsync has
// little left to do. Memory stays at slabs × slabBytes, however big the file.
import type { Hash } from "node:crypto";
import { fsyncSync, writeSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";

export interface StagedWriterOptions {
  /** The largest view write() is given. */
  maxView: number;
  /** File offset of the first byte (a resumed download starts after what it has). */
  start?: number;
  /** Updated with every byte, in order. */
  hash?: Hash;
  slabs?: number;
  slabBytes?: number;
  syncEvery?: number;
}

export class StagedWriter {
  /** Bytes taken so far, counted from the file's start. */
  position: number;
  private readonly free: Buffer[] = [];
  private current: Buffer | undefined;
  private fill = 0;
  private slabStart: number;
  private readonly slabBytes: number;
  private readonly inFlight = new Set<Promise<void>>();
  /** The slabs being written, by file offset: what writeStagedSync() writes again. */
  private readonly slabsInFlight = new Map<number, { slab: Buffer; length: number }>();
  /** The first write error, boxed: a thrown value may be anything, undefined included. */
  private failed: { error: unknown } | undefined;

  /** The first write error, if one happened. */
  get failure(): unknown {
    return this.failed?.error;
  }
  private waiter: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  private sinceSync = 0;
  private syncing = false;

  constructor(
    private readonly file: FileHandle,
    private readonly options: StagedWriterOptions,
  ) {
    this.position = options.start ?? 0;
    this.slabStart = this.position;
    this.slabBytes = Math.max(options.slabBytes ?? 4 << 20, 2 * options.maxView);
    for (let i = 0; i < (options.slabs ?? 3); i++)
      this.free.push(Buffer.allocUnsafe(this.slabBytes));
    this.current = this.free.pop();
  }

  /**
   * Takes `view` (hashed and copied before this returns). A returned promise means every slab is
   * on its way to disk: call again only once it resolves. It rejects if a write failed.
   */
  write(view: Buffer): Promise<void> | undefined {
    if (this.failed) return Promise.reject(this.failed.error);
    if (view.length > this.options.maxView) throw new RangeError("view larger than maxView");
    const slab = this.current;
    if (!slab) throw new Error("write() called before the last one's promise resolved");
    this.options.hash?.update(view);
    // A view read straight into space() is already where it belongs.
    if (view.buffer !== slab.buffer || view.byteOffset !== slab.byteOffset + this.fill)
      view.copy(slab, this.fill);
    this.fill += view.length;
    this.position += view.length;
    if (this.slabBytes - this.fill >= this.options.maxView) return undefined;
    this.submit();
    if (this.current) return undefined;
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Room to read the next view straight into (maxView bytes), while a slab is free. */
  space(): Buffer | undefined {
    if (this.failed !== undefined) return undefined;
    return this.current?.subarray(this.fill, this.fill + this.options.maxView);
  }

  /** Writes what is staged and waits for every write; throws the first write error. */
  async flush(): Promise<void> {
    if (this.fill > 0 && this.failed === undefined) this.submit();
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
    if (this.failed !== undefined) throw this.failed.error;
  }

  /**
   * Writes everything taken so far synchronously, slabs in flight included (the same bytes at the
   * same offsets, so a write still running in libuv's pool changes nothing), and returns how
   * many bytes the file now holds in order: for a signal handler, which cannot wait.
   */
  writeStagedSync(): number {
    if (this.failed !== undefined) throw this.failed.error;
    const fd = this.file.fd;
    const put = (data: Buffer, length: number, at: number) => {
      for (let done = 0; done < length;)
        done += writeSync(fd, data, done, length - done, at + done);
    };
    for (const [at, { slab, length }] of this.slabsInFlight) put(slab, length, at);
    if (this.current && this.fill > 0) put(this.current, this.fill, this.slabStart);
    fsyncSync(fd);
    return this.position;
  }

  /** Waits for the writes in flight, ignoring their errors (before the file is closed). */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  private submit(): void {
    const slab = this.current as Buffer;
    const length = this.fill;
    const at = this.slabStart;
    this.slabStart += length;
    this.fill = 0;
    this.current = this.free.pop();
    this.slabsInFlight.set(at, { slab, length });
    this.track(
      writeFully(this.file, slab, length, at).then(() => {
        this.slabsInFlight.delete(at);
        this.free.push(slab);
        this.sinceSync += length;
        if (this.sinceSync >= (this.options.syncEvery ?? 32 << 20) && !this.syncing) {
          this.sinceSync = 0;
          this.syncing = true;
          this.track(this.file.datasync().finally(() => (this.syncing = false)));
        }
        if (!this.current && this.failed === undefined) {
          this.current = this.free.pop();
          const waiter = this.waiter;
          this.waiter = undefined;
          waiter?.resolve();
        }
      }),
    );
  }

  /** Keeps `work` until it settles; its failure becomes the writer's (it never rejects here). */
  private track(work: Promise<unknown>): void {
    const tracked: Promise<void> = work.then(
      () => {
        this.inFlight.delete(tracked);
      },
      (e: unknown) => {
        this.inFlight.delete(tracked);
        this.failed ??= { error: e };
        const waiter = this.waiter;
        this.waiter = undefined;
        waiter?.reject(e);
      },
    );
    this.inFlight.add(tracked);
  }
}

async function writeFully(file: FileHandle, data: Buffer, length: number, at: number) {
  let done = 0;
  while (done < length) {
    const { bytesWritten } = await file.write(data, done, length - done, at + done);
    done += bytesWritten;
  }
}
