// A strict DER reader for the few structures a signature check walks (PKCS#7 SignedData, the
// identifying fields of an X.509 certificate). Definite lengths in their shortest form only,
// every length bounded by its parent, no trailing bytes: anything else is refused, never
// guessed at. It decodes headers and a few primitives; the values stay slices of the input.

/** Why the bytes are not the DER expected; `offset` is where in the input it went wrong. */
export class DerError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte ${offset})`);
    this.name = "DerError";
  }
}

/** Tags used here: universal class, and context-specific [n] built by contextTag(). */
export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  sequence: 0x30,
  set: 0x31,
} as const;

/** The one-byte identifier of [n] (n < 31), primitive or constructed. */
export function contextTag(n: number, constructed: boolean): number {
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

/** One element: its identifier byte and where its header and content lie in the input. */
export interface DerElement {
  tag: number;
  /** Offset of the identifier byte. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset just after the content. */
  end: number;
}

/** The largest length accepted: 4 length bytes (nothing read here comes near). */
const MAX_LENGTH_BYTES = 4;

/** Reads the elements of one content range (or the whole input) in order. */
export class DerReader {
  private pos: number;

  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    private readonly end = bytes.length,
  ) {
    this.pos = start;
  }

  /** A reader over the content of `element`. */
  static inside(bytes: Uint8Array, element: DerElement): DerReader {
    return new DerReader(bytes, element.contentStart, element.end);
  }

  get atEnd(): boolean {
    return this.pos >= this.end;
  }

  /** The tag of the next element without reading it, or undefined at the end. */
  peekTag(): number | undefined {
    return this.atEnd ? undefined : this.bytes[this.pos];
  }

  /** The next element, whatever its tag. */
  next(): DerElement {
    const start = this.pos;
    if (start >= this.end) throw new DerError("an element is missing", start);
    const tag = this.bytes[start] as number;
    // High tag numbers (0x1f) never occur in the structures read here.
    if ((tag & 0x1f) === 0x1f) throw new DerError(`tag 0x${hex(tag)} has a long form`, start);
    if (start + 1 >= this.end) throw new DerError("the length is cut off", start + 1);
    const first = this.bytes[start + 1] as number;
    let length: number;
    let contentStart: number;
    if (first < 0x80) {
      length = first;
      contentStart = start + 2;
    } else {
      const count = first & 0x7f;
      if (count === 0) throw new DerError("an indefinite length is not DER", start + 1);
      if (count > MAX_LENGTH_BYTES) throw new DerError("the length is too large", start + 1);
      if (start + 2 + count > this.end) throw new DerError("the length is cut off", start + 1);
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + (this.bytes[start + 2 + i] as number);
      // DER: the shortest form, so no leading zero byte and no long form below 128.
      if (this.bytes[start + 2] === 0 || length < 0x80)
        throw new DerError("the length is not in its shortest form", start + 1);
      contentStart = start + 2 + count;
    }
    const end = contentStart + length;
    if (end > this.end)
      throw new DerError(`an element of ${length} bytes runs past the end of its container`, start);
    this.pos = end;
    return { tag, start, contentStart, end };
  }

  /** The next element, which must have tag `tag`; `name` says what was expected. */
  expect(tag: number, name: string): DerElement {
    const at = this.pos;
    const actual = this.peekTag();
    if (actual === undefined) throw new DerError(`${name} is missing`, at);
    if (actual !== tag)
      throw new DerError(`${name}: expected tag 0x${hex(tag)}, found 0x${hex(actual)}`, at);
    return this.next();
  }

  /** The next element if it has tag `tag`, else undefined (nothing read). */
  optional(tag: number): DerElement | undefined {
    return this.peekTag() === tag ? this.next() : undefined;
  }

  /** Refuses anything left in the range; `name` says what should have ended. */
  finish(name: string): void {
    if (!this.atEnd) throw new DerError(`unexpected bytes after the end of ${name}`, this.pos);
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** The content bytes of `element` (a view, not a copy). */
export function contentOf(bytes: Uint8Array, element: DerElement): Buffer {
  return Buffer.from(
    bytes.buffer,
    bytes.byteOffset + element.contentStart,
    element.end - element.contentStart,
  );
}

/** The whole encoding of `element`, header included (a view, not a copy). */
export function encodingOf(bytes: Uint8Array, element: DerElement): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset + element.start, element.end - element.start);
}

/** The largest OID arc decoded; larger ones are refused (none of ours come near). */
const MAX_ARC = 2 ** 32;

/** An OBJECT IDENTIFIER's dotted form; non-minimal or cut-off arcs are refused. */
export function readOid(bytes: Uint8Array, element: DerElement): string {
  if (element.tag !== TAG.oid) throw new DerError("not an OBJECT IDENTIFIER", element.start);
  if (element.end === element.contentStart)
    throw new DerError("an empty OBJECT IDENTIFIER", element.start);
  const arcs: number[] = [];
  let value = 0;
  let fresh = true;
  for (let i = element.contentStart; i < element.end; i++) {
    const b = bytes[i] as number;
    if (fresh && b === 0x80) throw new DerError("an OID arc with a leading zero", i);
    value = value * 128 + (b & 0x7f);
    if (value >= MAX_ARC) throw new DerError("an OID arc too large", i);
    fresh = (b & 0x80) === 0;
    if (fresh) {
      if (arcs.length === 0) {
        const top = value < 40 ? 0 : value < 80 ? 1 : 2;
        arcs.push(top, value - top * 40);
      } else arcs.push(value);
      value = 0;
    }
  }
  if (!fresh) throw new DerError("the last OID arc is cut off", element.end);
  return arcs.join(".");
}
