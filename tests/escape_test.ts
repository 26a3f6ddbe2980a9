import { assertEquals } from "@std/assert";
import { escapeBytes, escapeText } from "../lib/escape.ts";

const bytes = (...values: number[]) => new Uint8Array(values);
const utf8 = (text: string) => new TextEncoder().encode(text);

Deno.test("escapeBytes() keeps printable ASCII and valid UTF-8 as they are", () => {
  assertEquals(escapeBytes(utf8("Hello, World!")), "Hello, World!");
  assertEquals(escapeBytes(utf8("héllo wörld ✓ 🦕")), "héllo wörld ✓ 🦕");
});

Deno.test("escapeBytes() escapes control characters, backslash and DEL", () => {
  assertEquals(escapeBytes(utf8("a\nb\tc\rd\0e\\f")), "a\\nb\\tc\\rd\\0e\\\\f");
  assertEquals(escapeBytes(utf8("\x1b[2J\x07\x7f")), "\\x1b[2J\\x07\\x7f");
});

Deno.test("escapeBytes() shows invalid UTF-8 byte by byte", () => {
  assertEquals(escapeBytes(bytes(0xff, 0x41, 0xc3)), "\\xffA\\xc3"); // truncated sequence
  assertEquals(escapeBytes(bytes(0xc0, 0xaf)), "\\xc0\\xaf"); // overlong "/"
  assertEquals(escapeBytes(bytes(0xed, 0xa0, 0x80)), "\\xed\\xa0\\x80"); // surrogate
  assertEquals(escapeBytes(bytes(0xf4, 0x90, 0x80, 0x80)), "\\xf4\\x90\\x80\\x80"); // > U+10FFFF
});

Deno.test("escapeBytes() escapes C1 controls and bidirectional overrides", () => {
  assertEquals(escapeBytes(utf8("\u009b31m")), "\\u{009b}31m");
  assertEquals(escapeBytes(utf8("abc\u202edef")), "abc\\u{202e}def");
});

Deno.test("escapeBytes() shortens to maxBytes and says how much it left out", () => {
  assertEquals(escapeBytes(utf8("abcdef"), { maxBytes: 3 }), "abc…(+3 bytes)");
  assertEquals(escapeBytes(utf8("abc"), { maxBytes: 3 }), "abc");
  // A multi-byte character cut by the limit is shown as bytes, never read past the limit.
  assertEquals(escapeBytes(utf8("aé"), { maxBytes: 2 }), "a\\xc3…(+1 bytes)");
});

Deno.test("escapeBytes() keeps line breaks when asked and still escapes the rest", () => {
  assertEquals(escapeBytes(utf8("a\nb\tc\r\x1b"), { keepLineBreaks: true }), "a\nb\tc\\r\\x1b");
});

Deno.test("escapeText() escapes a decoded string by the same rules", () => {
  assertEquals(escapeText("a\u0000b"), "a\\0b");
});
