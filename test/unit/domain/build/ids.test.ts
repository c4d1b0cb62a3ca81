import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";
import { asV4, defaultSeed, SeededIds, uuidV5 } from "../../../../src/domain/build/ids.js";

test("uuidV5 matches the RFC 4122 example value", () => {
  assert.equal(
    uuidV5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com"),
    "2ed6657d-e927-568b-95e1-2665a8aea6a2",
  );
});

test("the default seed is AuroraBoot's UUIDv5(DNS, kairos-KIND), different per kind", () => {
  assert.equal(
    defaultSeed("sysext"),
    uuidV5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "kairos-sysext"),
  );
  assert.notEqual(defaultSeed("sysext"), defaultSeed("confext"));
  assert.match(
    defaultSeed("sysext"),
    /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  );
});

test("seeded ids are HMAC-SHA256 of the seed made v4, as repart derives them", () => {
  const seed = "750b6cd5-c4ae-4012-a15e-7be3c29e6a47";
  const key = Buffer.from(seed.replace(/-/g, ""), "hex");
  const ids = new SeededIds(seed);
  assert.equal(ids.diskGuid(), asV4(createHmac("sha256", key).update("disk-uuid").digest()));
  assert.deepEqual(ids.veritySalt(), createHmac("sha256", key).update("verity-salt").digest());
  const type = "41092b05-9fc8-4523-994f-2def0408b176";
  assert.equal(
    ids.partitionUuid(type),
    asV4(
      createHmac("sha256", key)
        .update(Buffer.from(type.replace(/-/g, ""), "hex"))
        .digest(),
    ),
  );
  assert.notEqual(ids.partitionUuid(type, 1), ids.partitionUuid(type));
  assert.match(ids.verityUuid(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab]/);
});

test("a seed that is not a UUID is refused", () => {
  assert.throws(() => new SeededIds("not-a-uuid"), /is not a UUID/);
});
