/**
 * Makes what local TLS needs: a certificate authority and a server certificate it signed, for
 * 127.0.0.1, ::1 and localhost (or the names given), with `openssl`. A self-signed certificate
 * is not enough: rustls (Deno's TLS) refuses a certificate that is its own CA, so the clients
 * of this collection trust the CA (`--ca certs/ca.pem`) and the servers present the
 * certificate it signed (`--cert certs/server.pem --key certs/server.key`).
 *
 * Run:    deno task certs        (or: deno run --allow-run=openssl --allow-read=certs
 *                                 --allow-write=certs scripts/make_certs.ts)
 * Try it: deno task tcp-server --tls --cert certs/server.pem --key certs/server.key, then
 *         deno task tcp-client --tls --ca certs/ca.pem
 *
 * @module
 */
import { printError, runMain } from "../lib/cli.ts";
import { parseCount, parseFlags } from "../lib/flags.ts";
import { requirePermission } from "../lib/permissions.ts";

/** Options for {@linkcode makeCertificates}. */
export interface CertificateOptions {
  /** Names the server certificate is valid for, in openssl's subjectAltName syntax.
   * @default {["IP:127.0.0.1", "IP:::1", "DNS:localhost"]} */
  names?: readonly string[];
  /** Days the certificates are valid. @default {30} */
  days?: number;
  /** Replace files that exist already. @default {false} */
  force?: boolean;
}

/** The files {@linkcode makeCertificates} writes, as paths. */
export interface CertificateFiles {
  /** The CA certificate: what clients trust (`--ca`, `curl --cacert`). */
  caFile: string;
  /** The CA's private key (keep it, or delete it once the server certificate is made). */
  caKeyFile: string;
  /** The server certificate (`--cert`). */
  certFile: string;
  /** The server's private key, PKCS#8 (`--key`). */
  keyFile: string;
}

/**
 * Writes `ca.pem`, `ca.key`, `server.pem` and `server.key` into `dir` (created if needed), the
 * recipe of the tests' `tests/_tls.ts`: P-256 keys, a CA with `CA:TRUE` and `keyCertSign`, a
 * server certificate with the names as subjectAltName and `serverAuth`. Refuses to replace
 * existing files unless `force`.
 *
 * @example
 * ```ts ignore
 * import { makeCertificates } from "./make_certs.ts";
 * const files = await makeCertificates("certs", { days: 7 });
 * ```
 */
export async function makeCertificates(
  dir: string,
  options: CertificateOptions = {},
): Promise<CertificateFiles> {
  const { names = ["IP:127.0.0.1", "IP:::1", "DNS:localhost"], days = 30 } = options;
  const file = (name: string) => `${dir}/${name}`;
  const files = {
    caFile: file("ca.pem"),
    caKeyFile: file("ca.key"),
    certFile: file("server.pem"),
    keyFile: file("server.key"),
  };
  await Deno.mkdir(dir, { recursive: true });
  if (!options.force) {
    for (const path of Object.values(files)) {
      if (await exists(path)) throw new Error(`${path} exists already (--force replaces it)`);
    }
  }
  // P-256 keys: made in milliseconds, and accepted by rustls and OpenSSL alike.
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"];
  // deno-fmt-ignore
  await openssl([
    "req", "-x509", ...newKey, "-days", `${days}`,
    "-keyout", files.caKeyFile, "-out", files.caFile,
    "-subj", "/CN=deno-sockets local CA",
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  // deno-fmt-ignore
  await openssl([
    "req", ...newKey, "-keyout", files.keyFile, "-out", file("server.csr"),
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
    "x509", "-req", "-in", file("server.csr"), "-days", `${days}`,
    "-CA", files.caFile, "-CAkey", files.caKeyFile, "-set_serial", randomSerial(),
    "-extfile", file("server.ext"), "-out", files.certFile,
  ]);
  await Deno.remove(file("server.csr"));
  await Deno.remove(file("server.ext"));
  return files;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function openssl(args: string[]): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("openssl", {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error("openssl is not installed (apt-get install openssl)");
    }
    throw error;
  }
  if (!output.success) {
    const why = new TextDecoder().decode(output.stderr).trim().split("\n")[0];
    throw new Error(`openssl ${args[0]} failed: ${why}`);
  }
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  bytes[0] &= 0x7f; // a positive serial number
  return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const USAGE = `Usage: make_certs.ts [options]

Makes a local CA and a server certificate it signed, with openssl, for TLS on this machine:
  DIR/ca.pem      the CA certificate: clients trust it   (--ca DIR/ca.pem, curl --cacert)
  DIR/ca.key      the CA's private key
  DIR/server.pem  the server certificate                 (--cert DIR/server.pem)
  DIR/server.key  the server's private key               (--key DIR/server.key)
A self-signed certificate alone is refused by Deno's TLS (rustls): it must chain to a CA.

Options:
  --dir DIR       where to write the files                          [default: certs]
  --name NAME     a name the certificate is valid for, repeatable (IP:10.0.0.1, DNS:host)
                  [default: IP:127.0.0.1 IP:::1 DNS:localhost]
  --days N        days the certificates are valid                   [default: 30]
  --force         replace files that exist
  -h, --help      show this help
  --version       print the version

Run:    deno run --allow-run=openssl --allow-read=certs --allow-write=certs scripts/make_certs.ts`;

async function main(args: string[]): Promise<void> {
  const flags = parseFlags(args, {
    string: ["dir", "days"],
    boolean: ["force"],
    collect: ["name"],
    usage: USAGE,
  });
  const dir = flags.dir ?? "certs";
  requirePermission({ name: "run", command: "openssl" }, "--allow-run=openssl", "run openssl");
  const both = `--allow-read=${dir} --allow-write=${dir}`;
  for (const name of ["read", "write"] as const) {
    requirePermission({ name, path: dir }, both, `write certificates into ${dir}`);
  }
  const files = await makeCertificates(dir, {
    names: flags.name.length > 0 ? flags.name : undefined,
    days: parseCount(flags.days ?? "30", "--days", { max: 3650 }),
    force: flags.force,
  });
  printError(`wrote ${files.caFile}, ${files.caKeyFile}, ${files.certFile} and ${files.keyFile}`);
  printError(`servers: --tls --cert ${files.certFile} --key ${files.keyFile}`);
  printError(`clients: --tls --ca ${files.caFile}`);
}

if (import.meta.main) runMain("make_certs", () => main(Deno.args));
