/**
 * TLS for the stream programs: `--tls`, `--cert`, `--key` and `--alpn` on servers, `--tls`,
 * `--ca`, `--insecure` and `--alpn` on clients, turned into the options `Deno.listenTls` and
 * `Deno.connectTls` take (lib/net listens and connects with them), with one clear line for every
 * file or handshake that goes wrong.
 *
 * Deno 2.9.6 has one per-connection way to weaken verification:
 * `unsafelyDisableHostnameVerification`, which skips the name check but still checks the
 * certificate chain. That is what `--insecure` does, with a warning. Skipping the chain check
 * too (a self-signed server) needs the runtime flag
 * `deno run --unsafely-ignore-certificate-errors=HOST`, which Deno announces itself with a
 * `DANGER` line: never silently insecure.
 * @module
 */
import { printError } from "./cli.ts";
import { describeError, UsageError } from "./errors.ts";
import { readBoundedFile } from "./files.ts";

/** What a TLS server needs, ready for `Deno.listenTls`. */
export interface ServerTlsOptions {
  /** The certificate chain, PEM, server certificate first. */
  cert: string;
  /** The private key, PEM (PKCS#8, RSA or EC). */
  key: string;
  /** ALPN protocols offered, most preferred first. */
  alpnProtocols?: string[];
}

/** What a TLS client needs, ready for `Deno.connectTls`. */
export interface ClientTlsOptions {
  /** CA certificates trusted in addition to the system's, PEM. */
  caCerts?: string[];
  /** ALPN protocols offered, most preferred first. */
  alpnProtocols?: string[];
  /** Skip the check that the certificate names the host (`--insecure`). @default {false} */
  unsafelyDisableHostnameVerification?: boolean;
}

/**
 * The TLS flags as `parseFlags()` returns them; declare the ones a program takes with
 * `string: ["cert", "key", "ca"]`, `boolean: ["tls", "insecure"]`, `collect: ["alpn"]`.
 */
export interface TlsFlags {
  /** `--tls`: switches TLS on. */
  tls?: boolean;
  /** `--cert FILE` (servers). */
  cert?: string;
  /** `--key FILE` (servers). */
  key?: string;
  /** `--ca FILE` (clients). */
  ca?: string;
  /** `--insecure` (clients). */
  insecure?: boolean;
  /** `--alpn P1,P2` (repeatable). */
  alpn?: readonly string[];
}

/** Options for {@linkcode clientTlsFromFlags}. */
export interface ClientTlsFlagOptions {
  /** Where the `--insecure` warning goes. @default {printError} */
  onWarning?: (line: string) => void;
}

/** The largest certificate, key or CA bundle read (the system bundle is about 200 KiB). */
const MAX_PEM_BYTES = 1024 * 1024;

/**
 * Parses `--alpn` values: each a comma-separated list of protocol names (`h2,http/1.1`), the
 * flag repeatable; duplicates are dropped, order kept. Returns `undefined` for no values.
 *
 * @example
 * ```ts
 * import { parseAlpn } from "./tls.ts";
 * const protocols = parseAlpn(["h2,http/1.1", "h2"]);
 * if (protocols?.join(" ") !== "h2 http/1.1") throw new Error(String(protocols));
 * ```
 */
export function parseAlpn(values: readonly string[]): string[] | undefined {
  if (values.length === 0) return undefined;
  const protocols = new Set<string>();
  for (const value of values) {
    for (const name of value.split(",")) {
      // ALPN names are opaque bytes on the wire (1 to 255); on a command line, visible ASCII.
      if (!/^[\x21-\x7e]{1,255}$/.test(name)) {
        throw new UsageError(
          `Cannot parse --alpn "${value}": must be protocol names of 1 to 255 visible ASCII characters, separated by commas`,
        );
      }
      protocols.add(name);
    }
  }
  return [...protocols];
}

/**
 * Reads the server's TLS flags: `undefined` without `--tls`; otherwise the PEM contents of
 * `--cert` and `--key` and the `--alpn` list. Flag combinations that make no sense are a
 * {@linkcode UsageError}; a file that cannot be read or holds no PEM is an `Error` naming it.
 *
 * @example Plain TCP when `--tls` is absent
 * ```ts
 * import { serverTlsFromFlags } from "./tls.ts";
 * if (await serverTlsFromFlags({ tls: false, alpn: [] }) !== undefined) throw new Error("TLS");
 * ```
 */
export async function serverTlsFromFlags(
  flags: TlsFlags,
): Promise<ServerTlsOptions | undefined> {
  if (!flags.tls) {
    rejectWithoutTls(flags, ["cert", "key", "alpn"]);
    return undefined;
  }
  if (flags.cert === undefined || flags.key === undefined) {
    throw new UsageError(`Flag "--tls" on a server needs "--cert FILE" and "--key FILE"`);
  }
  // One after the other, so the error names the first bad file every time.
  const cert = await readPemFile(flags.cert, "--cert");
  const key = await readPemFile(flags.key, "--key");
  const alpnProtocols = parseAlpn(flags.alpn ?? []);
  return { cert, key, ...(alpnProtocols && { alpnProtocols }) };
}

/**
 * Reads the client's TLS flags: `undefined` without `--tls`; otherwise the `--ca` bundle,
 * the `--alpn` list and, for `--insecure`, no host name check (announced on stderr).
 *
 * @example TLS with the system's trusted CAs
 * ```ts
 * import { clientTlsFromFlags } from "./tls.ts";
 * const tls = await clientTlsFromFlags({ tls: true, alpn: ["echo"] });
 * if (tls?.alpnProtocols?.[0] !== "echo") throw new Error(JSON.stringify(tls));
 * ```
 */
export async function clientTlsFromFlags(
  flags: TlsFlags,
  options: ClientTlsFlagOptions = {},
): Promise<ClientTlsOptions | undefined> {
  if (!flags.tls) {
    rejectWithoutTls(flags, ["ca", "insecure", "alpn"]);
    return undefined;
  }
  const tls: ClientTlsOptions = {};
  if (flags.ca !== undefined) tls.caCerts = [await readPemFile(flags.ca, "--ca")];
  const alpnProtocols = parseAlpn(flags.alpn ?? []);
  if (alpnProtocols) tls.alpnProtocols = alpnProtocols;
  if (flags.insecure) {
    tls.unsafelyDisableHostnameVerification = true;
    (options.onWarning ?? printError)(INSECURE_WARNING);
  }
  return tls;
}

/** What `--insecure` prints: what it skips, what it does not, and how to skip that too. */
export const INSECURE_WARNING: string =
  "warning: --insecure: the server certificate's host name is not checked; its chain still is " +
  "(trust its CA with --ca FILE, or run deno with --unsafely-ignore-certificate-errors=HOST)";

function rejectWithoutTls(flags: TlsFlags, names: readonly (keyof TlsFlags)[]): void {
  for (const name of names) {
    const value = flags[name];
    if (value === undefined || value === false || (Array.isArray(value) && value.length === 0)) {
      continue;
    }
    throw new UsageError(`Flag "--${name}" needs "--tls"`);
  }
}

/**
 * Reads a PEM file named by `flag` (`--cert`, `--key` or `--ca`) and checks that it holds
 * what the flag promises, so a swapped or missing file is reported by name, not by rustls.
 *
 * @example
 * ```ts ignore
 * import { readPemFile } from "./tls.ts";
 * const cert = await readPemFile("server.pem", "--cert");
 * ```
 */
export async function readPemFile(
  path: string,
  flag: "--cert" | "--key" | "--ca",
): Promise<string> {
  const text = new TextDecoder().decode(
    await readBoundedFile(path, { flag, maxBytes: MAX_PEM_BYTES }),
  );
  if (flag === "--key") {
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(text)) {
      throw new Error(
        `Cannot use --key "${path}": the key is encrypted (decrypt it: openssl pkey -in KEY -out PLAIN.key)`,
      );
    }
    if (!/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(text)) {
      throw new Error(`Cannot use --key "${path}": it holds no PEM private key`);
    }
  } else if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error(`Cannot use ${flag} "${path}": it holds no PEM certificate`);
  }
  return text;
}

/**
 * Whether `error` is a failed TLS handshake or a broken TLS record (Deno throws
 * `Deno.errors.InvalidData`): like a reset, it ends one connection, never a server.
 *
 * @example
 * ```ts
 * import { isTlsFailure } from "./tls.ts";
 * if (!isTlsFailure(new Deno.errors.InvalidData("received fatal alert: UnknownCA"))) {
 *   throw new Error("not a TLS failure");
 * }
 * ```
 */
export function isTlsFailure(error: unknown): boolean {
  return error instanceof Deno.errors.InvalidData;
}

const HINTS: [RegExp, string][] = [
  // BadSignature: a CA of the trusted name did not sign it (another CA with the same name did).
  [
    /UnknownIssuer|BadSignature/,
    "the certificate is not signed by a trusted CA: trust its CA with --ca FILE",
  ],
  [
    /NotValidForName|not valid for name/,
    "the certificate does not name this host (--insecure skips that check)",
  ],
  [/CaUsedAsEndEntity/, "the server presents a CA certificate; give it one signed by a CA"],
  [
    /Expired|NotValidYet|not valid (after|before)/i,
    "the certificate is outside its validity period",
  ],
  [/NoApplicationProtocol/, "the server speaks none of the --alpn protocols"],
  [/KeyMismatch/, "the --key private key does not belong to the --cert certificate"],
];

/**
 * Turns a TLS error from Deno (rustls wording) into one line that says what to do; other
 * errors are returned unchanged. `peer` names the server a client connected to.
 *
 * @example
 * ```ts
 * import { explainTlsError } from "./tls.ts";
 * const error = explainTlsError(
 *   new Deno.errors.InvalidData("invalid peer certificate: UnknownIssuer"),
 *   "127.0.0.1:443",
 * );
 * if (!(error instanceof Error) || !error.message.includes("--ca FILE")) throw error;
 * ```
 */
export function explainTlsError(error: unknown, peer?: string): unknown {
  if (!(error instanceof Error)) return error;
  const hint = HINTS.find(([pattern]) => pattern.test(error.message))?.[1];
  if (hint === undefined) return error;
  const where = peer === undefined ? "TLS" : `TLS handshake with ${peer}`;
  let message = `${where} failed: ${hint} (${describeError(error)})`;
  if (peer !== undefined && /UnknownIssuer|BadSignature|CaUsedAsEndEntity/.test(error.message)) {
    const host = peer.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
    message += `; to skip verification: deno run --unsafely-ignore-certificate-errors=${host}`;
  }
  return new Error(message, { cause: error });
}
