import { assertEquals, assertRejects } from "@std/assert";
import { formatAddr, formatHostPort } from "../lib/address.ts";
import { closeOnce, describeError, isPeerGone, UsageError, withAddress } from "../lib/errors.ts";
import { claimUnixPath, releaseUnixPath } from "../lib/net/unix_path.ts";

Deno.test("formatAddr() brackets IPv6 and names Unix paths", () => {
  assertEquals(formatAddr({ transport: "tcp", hostname: "127.0.0.1", port: 1 }), "127.0.0.1:1");
  assertEquals(formatAddr({ transport: "udp", hostname: "::1", port: 5005 }), "[::1]:5005");
  assertEquals(formatAddr({ transport: "unix", path: "/tmp/a.sock" }), "unix:/tmp/a.sock");
  assertEquals(formatAddr({ transport: "unix", path: "" }), "unix:(unnamed)");
  assertEquals(formatHostPort("fe80::1", 80), "[fe80::1]:80");
});

Deno.test("formatAddr() prints the address a real IPv6 listener bound", () => {
  using listener = Deno.listen({ hostname: "::1", port: 0 });
  assertEquals(formatAddr(listener.addr), `[::1]:${listener.addr.port}`);
});

Deno.test("describeError() gives one line with a hint and without the OS error number", () => {
  const refused = withAddress(
    new Deno.errors.ConnectionRefused("Connection refused (os error 111)"),
    "127.0.0.1:9",
  );
  assertEquals(describeError(refused), "127.0.0.1:9: Connection refused (is the server running?)");
  const inUse = withAddress(new Deno.errors.AddrInUse("Address already in use"), "[::1]:80");
  assertEquals(
    describeError(inUse),
    "[::1]:80: Address already in use (is another server running there?)",
  );
  assertEquals(describeError(new UsageError("Bad\nsecond line")), "Bad");
  assertEquals(describeError("plain"), "plain");
});

Deno.test("isPeerGone() tells a vanished peer from a real failure", () => {
  assertEquals(isPeerGone(new Deno.errors.BrokenPipe("x")), true);
  assertEquals(isPeerGone(new Deno.errors.ConnectionReset("x")), true);
  assertEquals(isPeerGone(new Deno.errors.AddrInUse("x")), false);
  assertEquals(isPeerGone(new TypeError("x")), false);
});

Deno.test("closeOnce() closes a resource once however often it is called", () => {
  let closes = 0;
  const close = closeOnce({ close: () => closes++ });
  close();
  close();
  assertEquals(closes, 1);
});

Deno.test("claimUnixPath() removes a stale socket and refuses a live one or a plain file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/s.sock`;
    await claimUnixPath(path); // nothing there: nothing to do

    // A datagram socket that is closed leaves its file behind: a stale socket.
    Deno.listenDatagram({ transport: "unixpacket", path }).close();
    await claimUnixPath(path);
    await assertRejects(() => Deno.lstat(path), Deno.errors.NotFound);

    {
      using _live = Deno.listen({ transport: "unix", path });
      await assertRejects(() => claimUnixPath(path), Deno.errors.AddrInUse, "in use");
    }
    releaseUnixPath(path);
    releaseUnixPath(path); // safe twice

    await Deno.writeTextFile(path, "not a socket");
    await assertRejects(() => claimUnixPath(path), Deno.errors.AlreadyExists, "is not a socket");
    assertEquals(await Deno.readTextFile(path), "not a socket");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
