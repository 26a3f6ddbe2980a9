import { assertEquals, assertThrows } from "@std/assert";
import { UsageError } from "../lib/errors.ts";
import {
  InfoRequest,
  parseCount,
  parseDuration,
  parseEndpoint,
  parseFlags,
  parseHost,
  parsePort,
  parseSize,
  rejectTogether,
  VERSION,
} from "../lib/flags.ts";

const spec = {
  string: ["port", "host"],
  boolean: ["quiet"],
  collect: ["message"],
  alias: { q: "quiet" },
} as const;

Deno.test("parseFlags() returns typed strings, booleans and repeated values", () => {
  const flags = parseFlags(
    ["--port=1", "--port", "2", "-q", "--message", "a", "--message", "b"],
    spec,
  );
  assertEquals(flags.port, "2");
  assertEquals(flags.host, undefined);
  assertEquals(flags.quiet, true);
  assertEquals(flags.message, ["a", "b"]);
});

Deno.test("parseFlags() rejects unknown flags, positional arguments and missing values", () => {
  assertThrows(() => parseFlags(["--prot", "1"], spec), UsageError, 'Unknown flag "--prot"');
  assertThrows(() => parseFlags(["--prot=1"], spec), UsageError, 'Unknown flag "--prot"');
  assertThrows(() => parseFlags(["12345"], spec), UsageError, 'Unexpected argument "12345"');
  assertThrows(() => parseFlags(["--port"], spec), UsageError, 'Flag "--port" needs a value');
});

Deno.test("parsePort() accepts 0 to 65535 and nothing else", () => {
  assertEquals(parsePort("0"), 0);
  assertEquals(parsePort("65535"), 65535);
  for (const bad of ["65536", "70000", "-1", "abc", "1.5", "", " 80", "0x50", "123456"]) {
    assertThrows(
      () => parsePort(bad),
      UsageError,
      `Cannot parse --port "${bad}": must be an integer from 0 to 65535`,
    );
  }
});

Deno.test("parseHost() accepts IPv4, IPv6 with or without brackets, and host names", () => {
  assertEquals(parseHost("127.0.0.1"), "127.0.0.1");
  assertEquals(parseHost("::1"), "::1");
  assertEquals(parseHost("[::1]"), "::1");
  assertEquals(parseHost("fe80::1:2"), "fe80::1:2");
  assertEquals(parseHost("::ffff:127.0.0.1"), "::ffff:127.0.0.1");
  assertEquals(parseHost("localhost"), "localhost");
  assertEquals(parseHost("my-host.example.org."), "my-host.example.org.");
  for (const bad of ["256.1.1.1", "1.2.3", "a b", "-x.org", "[::1", ":::", "1::2::3", "", "x..y"]) {
    assertThrows(() => parseHost(bad), UsageError, `Cannot parse --host "${bad}"`);
  }
});

Deno.test("parseSize() reads binary units and enforces bounds", () => {
  assertEquals(parseSize("512", "--size"), 512);
  assertEquals(parseSize("64k", "--size"), 65536);
  assertEquals(parseSize("64KiB", "--size"), 65536);
  assertEquals(parseSize("2M", "--size"), 2 * 1024 * 1024);
  assertThrows(() => parseSize("0", "--size"), UsageError, "from 1 to");
  assertThrows(
    () => parseSize("2k", "--size", { max: 1024 }),
    UsageError,
    'Cannot parse --size "2k"',
  );
  assertThrows(() => parseSize("12q", "--size"), UsageError);
  assertThrows(() => parseSize("-5", "--size"), UsageError);
});

Deno.test("parseDuration() reads units, treats a bare number as seconds, and rejects zero", () => {
  assertEquals(parseDuration("250ms", "--timeout"), 250);
  assertEquals(parseDuration("1.5s", "--timeout"), 1500);
  assertEquals(parseDuration("2", "--timeout"), 2000);
  assertEquals(parseDuration("2m", "--timeout"), 120_000);
  assertEquals(parseDuration("0", "--idle-timeout", { allowZero: true }), 0);
  assertThrows(() => parseDuration("0", "--timeout"), UsageError, "must be a duration");
  assertThrows(
    () => parseDuration("soon", "--timeout"),
    UsageError,
    'Cannot parse --timeout "soon"',
  );
  assertThrows(() => parseDuration("99999h", "--timeout"), UsageError);
});

Deno.test("parseCount() accepts whole numbers within bounds", () => {
  assertEquals(parseCount("3", "--count"), 3);
  assertThrows(() => parseCount("0", "--count"), UsageError, "from 1 to");
  assertThrows(() => parseCount("7", "--count", { max: 5 }), UsageError, "from 1 to 5");
  assertThrows(() => parseCount("2.5", "--count"), UsageError);
});

Deno.test("rejectTogether() names both flags that exclude each other", () => {
  rejectTogether({ unix: "/tmp/x", host: undefined }, ["unix", "host"]);
  assertThrows(
    () => rejectTogether({ unix: "/tmp/x", host: "::1" }, ["unix", "host"]),
    UsageError,
    'Flags "--unix" and "--host" exclude each other',
  );
});

Deno.test("parseEndpoint() defaults to 127.0.0.1 and keeps --unix apart from host, port and TLS", () => {
  assertEquals(parseEndpoint({}, 5005), { hostname: "127.0.0.1", port: 5005, path: undefined });
  assertEquals(parseEndpoint({ host: "[::1]", port: "0" }, 5005).hostname, "::1");
  assertEquals(parseEndpoint({ unix: "/tmp/s" }, 1).path, "/tmp/s");
  for (const other of [{ host: "::1" }, { port: "1" }, { tls: true }]) {
    assertThrows(
      () => parseEndpoint({ unix: "/tmp/s", ...other }, 1),
      UsageError,
      "exclude each other",
    );
  }
});

Deno.test("parseFlags() takes `--flag ''` as an empty value only where allowEmpty says so", () => {
  const parse = (args: string[]) =>
    parseFlags(args, {
      string: ["message", "port"],
      alias: { m: "message" },
      allowEmpty: ["message"],
    });
  assertEquals(parse(["--message", ""]).message, "");
  assertEquals(parse(["-m", ""]).message, "");
  assertEquals(parse(["--message="]).message, "");
  assertThrows(() => parse(["--port", ""]), UsageError, 'Flag "--port" needs a value');
});

Deno.test("parseFlags() fills positional slots, lets flags win, and suggests the closest flag", () => {
  const spec = { string: ["host", "port"], positional: ["host", "port"] } as const;
  const flags = parseFlags(["::1", "80", "--port", "8080"], spec);
  assertEquals([flags.host, flags.port], ["::1", "8080"]);
  assertThrows(() => parseFlags(["a", "b", "c"], spec), UsageError, 'Unexpected argument "c"');
  assertThrows(
    () => parseFlags(["--prot", "1"], spec),
    UsageError,
    'Unknown flag "--prot" (did you mean "--port"?)',
  );
});

Deno.test("parseFlags() answers --help and --version with an InfoRequest", () => {
  const help = assertThrows(() => parseFlags(["-h"], { usage: "Usage: x" }), InfoRequest);
  assertEquals(help.text, "Usage: x");
  const version = assertThrows(() => parseFlags(["--version"], {}), InfoRequest);
  assertEquals(version.text, VERSION);
});
