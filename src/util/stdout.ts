// Data goes to stdout with write(2) on descriptor 1 rather than through process.stdout: creating
// that stream loads node:stream and, for a pipe, node:net (~4 ms of a command that prints a
// table). Node writes stdout synchronously on Linux whether it is a file, a pipe or a TTY, so
// what is printed and when is the same either way.
import { writeSync } from "node:fs";

let viaStream = false;
let readerGone = false;

/**
 * process.stdout, for output that is a stream (a file's bytes) or when descriptor 1 would block.
 * `extctl ... | head` closes the pipe early: printing stops, but the command finishes its work
 * (an install or enable half-done because its reader went away would be worse than a crash).
 */
export function stdoutStream(): NodeJS.WriteStream {
  if (!viaStream) {
    viaStream = true;
    process.stdout.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
      readerGone = true;
    });
  }
  return process.stdout;
}

export function writeStdout(text: string): void {
  if (readerGone) return;
  if (viaStream) {
    process.stdout.write(text);
    return;
  }
  const bytes = Buffer.from(text, "utf8");
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(1, bytes, offset);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EPIPE") {
        readerGone = true;
        return;
      }
      // A non-blocking descriptor that is full: the stream queues the rest and waits.
      if (code !== "EAGAIN") throw e;
      stdoutStream().write(bytes.subarray(offset));
      return;
    }
  }
}
