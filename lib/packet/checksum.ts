/**
 * The Internet checksum of RFC 1071: the ones' complement of the ones' complement sum of 16-bit
 * words, used by IPv4, ICMP, TCP and UDP; TCP and UDP also sum a pseudo-header of addresses,
 * protocol and length, so a segment delivered to the wrong host fails its check.
 * @module
 */
/**
 * The ones' complement sum of `bytes` as big-endian 16-bit words, folded to 16 bits and added
 * to `initial` (another folded sum). An odd last byte is padded with a zero byte, so only the
 * last chunk of a message may have an odd length.
 *
 * @example The sum of the RFC 1071 example bytes
 * ```ts
 * import { onesComplementSum } from "./checksum.ts";
 * const sum = onesComplementSum(new Uint8Array([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]));
 * if (sum !== 0xddf2) throw new Error(sum.toString(16));
 * ```
 */
export function onesComplementSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = bytes.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (even < bytes.length) sum += bytes[even] << 8;
  // Each 16-bit add carries at most 1 into the upper half; two folds absorb any carry.
  sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return (sum & 0xffff) + (sum >>> 16);
}

/**
 * The Internet checksum of `bytes`: the complement of {@linkcode onesComplementSum}. Computed
 * over a header whose checksum field holds the right value, the result is 0.
 *
 * @example Checking an IPv4 header
 * ```ts
 * import { internetChecksum } from "./checksum.ts";
 * const header = Uint8Array.from(
 *   "4500002c976b40004001a5637f0000017f000001".match(/../g)!.map((h) => parseInt(h, 16)),
 * );
 * if (internetChecksum(header) !== 0) throw new Error("bad checksum");
 * ```
 */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  return ~onesComplementSum(bytes, initial) & 0xffff;
}
