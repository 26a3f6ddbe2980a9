/**
 * Test fixture: a throwaway certificate authority and a server certificate it signed, for
 * 127.0.0.1, ::1 and localhost, made with `openssl` when the tests run. rustls (Deno's TLS)
 * rejects a self-signed certificate that is its own CA, so the chain has two links, as in real
 * life. `await using` removes the files.
 * @module
 */
import { hasPeer } from "./_process.ts";

/** The certificates of one test, as files (for scripts and peers) and PEM text (for APIs). */
export interface TestCertificates extends AsyncDisposable {
  /** The temporary directory holding the files. */
  readonly dir: string;
  /** Path of the CA certificate (what a client trusts: `--ca`, `curl --cacert`). */
  readonly caFile: string;
  /** Path of the server certificate (`--cert`). */
  readonly certFile: string;
  /** Path of the server's private key (`--key`). */
  readonly keyFile: string;
  /** The CA certificate, PEM. */
  readonly caCert: string;
  /** The server certificate, PEM. */
  readonly cert: string;
  /** The server's private key, PEM (PKCS#8). */
  readonly key: string;
}

/** Whether the certificates can be made here; prints why TLS tests are skipped when not. */
export function hasOpenssl(): boolean {
  return hasPeer("openssl");
}

/** Options for {@linkcode createTestCertificates}. */
export interface TestCertificateOptions {
  /** Names the server certificate is valid for, in openssl's subjectAltName syntax.
   * @default {["IP:127.0.0.1", "IP:::1", "DNS:localhost"]} */
  names?: string[];
}

/** Creates a CA and a server certificate signed by it, valid for one day. */
export async function createTestCertificates(
  options: TestCertificateOptions = {},
): Promise<TestCertificates> {
  const names = options.names ?? ["IP:127.0.0.1", "IP:::1", "DNS:localhost"];
  const dir = await Deno.makeTempDir({ prefix: "deno-sockets-tls-" });
  const file = (name: string) => `${dir}/${name}`;
  try {
    // P-256 keys: generated in milliseconds, and supported by rustls and OpenSSL alike.
    const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"];
    // deno-fmt-ignore
    await openssl([
      "req", "-x509", ...newKey, "-days", "1",
      "-keyout", file("ca.key"), "-out", file("ca.pem"),
      "-subj", "/CN=deno-sockets test CA",
      "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    // deno-fmt-ignore
    await openssl([
      "req", ...newKey, "-keyout", file("server.key"), "-out", file("server.csr"),
      "-subj", "/CN=localhost",
    ]);
    await Deno.writeTextFile(
      file("server.ext"),
      [
        `subjectAltName=${names.join(",")}`,
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
      ].join("\n") + "\n",
    );
    // deno-fmt-ignore
    await openssl([
      "x509", "-req", "-in", file("server.csr"), "-days", "1",
      "-CA", file("ca.pem"), "-CAkey", file("ca.key"), "-set_serial", randomSerial(),
      "-extfile", file("server.ext"), "-out", file("server.pem"),
    ]);
    const [caCert, cert, key] = await Promise.all(
      ["ca.pem", "server.pem", "server.key"].map((name) => Deno.readTextFile(file(name))),
    );
    return {
      dir,
      caFile: file("ca.pem"),
      certFile: file("server.pem"),
      keyFile: file("server.key"),
      caCert,
      cert,
      key,
      async [Symbol.asyncDispose]() {
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
}

async function openssl(args: string[]): Promise<void> {
  const { success, stderr } = await new Deno.Command("openssl", {
    args,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(stderr).trim()}`);
  }
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  bytes[0] &= 0x7f; // a positive serial number
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
