// The one canonical identity for a registry host: every spelling the connection reads as the same
// host and port comes out the same; hosts that cannot be normalised are refused.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  canonicalRegistry,
  canonicalRegistryHost,
  canonicalRegistryPath,
} from "../../../../src/domain/oci/registry-host.js";

test("every spelling of 127.0.0.1:5001 is 127.0.0.1:5001", () => {
  for (const spelling of [
    "127.0.0.1:5001",
    "127.1:5001",
    "2130706433:5001",
    "0x7f000001:5001",
    "0X7F000001:5001",
    "127.000.000.001:5001",
    "0177.0.0.1:5001",
    "127.0.1:5001",
    "[::ffff:127.0.0.1]:5001",
    "[::FFFF:7f00:1]:5001",
    "[0:0:0:0:0:ffff:7f00:0001]:5001",
    "127.0.0.1:05001",
    "127.1:0005001",
  ])
    assert.deepEqual(canonicalRegistryHost(spelling), { host: "127.0.0.1:5001" }, spelling);
});

test("names are lower-cased, IPv6 compressed, the https port dropped and leading zeros too", () => {
  const cases: [string, string][] = [
    ["LOCALHOST:5001", "localhost:5001"],
    ["Quay.IO", "quay.io"],
    ["quay.io:443", "quay.io"],
    ["quay.io:0443", "quay.io"],
    ["registry.example.com:80", "registry.example.com:80"],
    ["[0:0:0:0:0:0:0:1]:5000", "[::1]:5000"],
    ["[2001:DB8::1]", "[2001:db8::1]"],
    ["10.0.0.1", "10.0.0.1"],
    ["docker.io", "docker.io"],
  ];
  for (const [input, want] of cases)
    assert.deepEqual(canonicalRegistryHost(input), { host: want }, input);
});

test("hosts that cannot be normalised are refused with a reason", () => {
  for (const bad of [
    "256.0.0.1",
    "1.2.3.4.5",
    "example.123",
    "0x100000000",
    "localhost:65536",
    "localhost:",
    "-bad.example",
    "a..b",
    "user@host",
    "host/path",
    "host%2e",
    "[::1",
    "[zz::1]",
    "",
  ])
    assert.ok(canonicalRegistryHost(bad).problem, bad);
  assert.throws(() => canonicalRegistry("256.1:5000", "the reference x"), /256\.1:5000.*IPv4/);
});

test("a prefix or auth key keeps its path, with the host part canonical", () => {
  assert.equal(canonicalRegistryPath("LOCALHOST:05001/Exts"), "localhost:5001/Exts");
  assert.equal(canonicalRegistryPath("127.1:5001/exts/a"), "127.0.0.1:5001/exts/a");
  assert.equal(canonicalRegistryPath("999.1/x"), undefined);
});
