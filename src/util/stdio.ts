// Output goes out with write(2) on descriptors 1 and 2 rather than through process.stdout and
// process.stderr: creating those streams loads node:stream and, for a pipe, node:net (~4 ms of a
// command that prints a table or one note). Node writes both synchronously on Linux whether
// they are files, pipes or TTYs, so what is printed and when is the same either way.
import { writeSync } from "node:fs";

interface Descriptor {
  readonly fd: 1 | 2;
  readonly stream: () => NodeJS.WriteStream;
  viaStream: boolean;
  readerGone: boolean;
}

const STDOUT: Descriptor = {
  fd: 1,
  stream: () => process.stdout,
  viaStream: false,
  readerGone: false,
};
const STDERR: Descriptor = {
  fd: 2,
  stream: () => process.stderr,
  viaStream: false,
  readerGone: false,
};

/**
 * The descriptor's stream, for output that is a stream (a file's bytes) or when the descriptor
 * would block. `extctl ... | head` closes the pipe early: printing stops, but the command
 * finishes its work (an install or enable half-done because its reader went away would be worse
 * than a crash).
 */
function streamOf(d: Descriptor): NodeJS.WriteStream {
  const stream = d.stream();
  if (!d.viaStream) {
    d.viaStream = true;
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
      d.readerGone = true;
    });
  }
  return stream;
}

function write(d: Descriptor, text: string): void {
  if (d.readerGone) return;
  if (d.viaStream) {
    d.stream().write(text);
    return;
  }
  const bytes = Buffer.from(text, "utf8");
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(d.fd, bytes, offset);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EPIPE") {
        d.readerGone = true;
        return;
      }
      // A non-blocking descriptor that is full: the stream queues the rest and waits.
      if (code !== "EAGAIN") throw e;
      streamOf(d).write(bytes.subarray(offset));
      return;
    }
  }
}

export function stdoutStream(): NodeJS.WriteStream {
  return streamOf(STDOUT);
}

export function writeStdout(text: string): void {
  write(STDOUT, text);
}

export function writeStderr(text: string): void {
  write(STDERR, text);
}
