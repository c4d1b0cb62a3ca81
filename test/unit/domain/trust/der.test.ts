// The strict DER reader and the SignedData/certificate fields read with it: well-formed DER is
// read; indefinite or non-minimal lengths, lengths past their container, trailing bytes, long
// tags, unexpected tags and bad OIDs are refused with a DerError that says what and where.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DerError, DerReader, readOid, TAG } from "../../../../src/domain/trust/der.js";
import { readCertificateIds, readSignedData } from "../../../../src/domain/trust/signed-data.js";

const bytes = (hex: string) => Buffer.from(hex.replace(/\s+/g, ""), "hex");

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DerError, `a DerError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.match(e.message, /\(at byte \d+\)$/);
    return true;
  });
}

test("short and long definite lengths are read, with content bounds", () => {
  const long = Buffer.concat([bytes("04 81 80"), Buffer.alloc(128, 7)]);
  const r = new DerReader(long);
  const e = r.expect(TAG.octetString, "an octet string");
  assert.deepEqual(
    { start: e.start, contentStart: e.contentStart, end: e.end },
    { start: 0, contentStart: 3, end: 131 },
  );
  r.finish("the input");
  const s = new DerReader(bytes("30 03 02 01 05"));
  const seq = s.expect(TAG.sequence, "a sequence");
  const inner = DerReader.inside(s.bytes, seq);
  assert.equal(inner.expect(TAG.integer, "an integer").contentStart, 4);
  inner.finish("the sequence");
});

test("indefinite, non-minimal and oversized lengths are refused", () => {
  refused(() => new DerReader(bytes("30 80 00 00")).next(), /indefinite length/);
  refused(() => new DerReader(bytes("04 81 05 0102030405")).next(), /shortest form/);
  refused(() => new DerReader(bytes("04 82 00 85" + "00".repeat(0x85))).next(), /shortest form/);
  refused(() => new DerReader(bytes("04 85 0000000001 00")).next(), /too large/);
});

test("lengths past the container, cut-off headers and trailing bytes are refused", () => {
  refused(() => new DerReader(bytes("04 05 0102")).next(), /runs past the end/);
  refused(() => new DerReader(bytes("04")).next(), /length is cut off/);
  refused(() => new DerReader(bytes("04 82 01")).next(), /length is cut off/);
  refused(() => new DerReader(bytes("")).next(), /missing/);
  // An element that fits the input but not its parent.
  const outer = new DerReader(bytes("30 02 04 03 010203"));
  const seq = outer.next();
  refused(() => DerReader.inside(outer.bytes, seq).next(), /runs past the end/);
  const r = new DerReader(bytes("05 00 00"));
  r.expect(TAG.null, "NULL");
  refused(() => r.finish("NULL"), /unexpected bytes after the end of NULL/);
});

test("high tag numbers and unexpected tags are refused, naming what was expected", () => {
  refused(() => new DerReader(bytes("1f 81 00 00")).next(), /long form/);
  refused(
    () => new DerReader(bytes("31 00")).expect(TAG.sequence, "SignedData"),
    /SignedData: expected tag 0x30, found 0x31/,
  );
});

test("OIDs are decoded; non-minimal, cut-off and empty ones are refused", () => {
  const oid = (hex: string) => {
    const b = bytes(hex);
    return readOid(b, new DerReader(b).next());
  };
  assert.equal(oid("06 09 2a864886f70d010702"), "1.2.840.113549.1.7.2");
  assert.equal(oid("06 03 551d0e"), "2.5.29.14");
  assert.equal(oid("06 03 883703"), "2.999.3");
  refused(() => oid("06 03 2a8001"), /leading zero/);
  refused(() => oid("06 02 2a86"), /cut off/);
  refused(() => oid("06 00"), /empty/);
  refused(() => oid("06 06 2a9090909001"), /too large/);
});

test("readSignedData refuses garbage and what is not SignedData, with a DerError", () => {
  refused(() => readSignedData(bytes("")), /ContentInfo is missing/);
  refused(() => readSignedData(bytes("0102030405")), /ContentInfo: expected tag 0x30/);
  // ContentInfo of id-data (1.2.840.113549.1.7.1), not SignedData.
  refused(
    () => readSignedData(bytes("30 0f 06 09 2a864886f70d010701 a0 02 04 00")),
    /content type is 1\.2\.840\.113549\.1\.7\.1, not SignedData/,
  );
  // SignedData with no signerInfos.
  refused(
    () =>
      readSignedData(
        bytes("30 19 06 09 2a864886f70d010702 a0 0c 30 0a 02 01 01 31 00 30 03 06 01 00"),
      ),
    /signerInfos is missing/,
  );
  refused(() => readCertificateIds(bytes("30 00")), /tbsCertificate is missing/);
});
