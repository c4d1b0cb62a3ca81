import assert from "node:assert/strict";
import { test } from "node:test";
import { bypassed, proxyFor, proxySettings } from "../../../../src/domain/net/proxy.js";

test("https URLs use https_proxy/HTTPS_PROXY, http URLs only lower-case http_proxy, ALL_PROXY both", () => {
  const url = (u: string) => new URL(u);
  assert.equal(
    proxyFor(url("https://r.example/x"), { HTTPS_PROXY: "http://p:3128" })?.host,
    "p:3128",
  );
  assert.equal(
    proxyFor(url("https://r.example/x"), { https_proxy: "p2:8080" })?.href,
    "http://p2:8080/",
  );
  assert.equal(proxyFor(url("http://r.example/x"), { HTTP_PROXY: "http://p:3128" }), undefined);
  assert.equal(
    proxyFor(url("http://r.example/x"), { http_proxy: "http://p:3128" })?.host,
    "p:3128",
  );
  assert.equal(proxyFor(url("http://r.example/x"), { ALL_PROXY: "http://a:1" })?.host, "a:1");
  assert.equal(proxyFor(url("https://r.example/x"), {}), undefined);
  assert.throws(
    () => proxyFor(url("https://r.example/x"), { HTTPS_PROXY: "socks5://p:1" }),
    /not supported/,
  );
});

test("no_proxy: names and their subdomains, a leading dot, *, addresses, CIDR, HOST:PORT", () => {
  assert.equal(bypassed("registry.example", 443, "example"), true);
  assert.equal(bypassed("registry.example", 443, ".example"), true);
  assert.equal(bypassed("example", 443, ".example"), true);
  assert.equal(bypassed("notexample", 443, "example"), false);
  assert.equal(bypassed("anything", 443, "*"), true);
  assert.equal(bypassed("127.0.0.1", 5000, "localhost,127.0.0.1"), true);
  assert.equal(bypassed("10.1.2.3", 443, "10.0.0.0/8"), true);
  assert.equal(bypassed("11.1.2.3", 443, "10.0.0.0/8"), false);
  assert.equal(bypassed("r.example", 5000, "r.example:5000"), true);
  assert.equal(bypassed("r.example", 443, "r.example:5000"), false);
  assert.equal(bypassed("::1", 443, "[::1]"), true);
  assert.deepEqual(proxySettings({ NO_PROXY: "a", https_proxy: " " }), { noProxy: "a" });
});
