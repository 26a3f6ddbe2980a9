/**
 * The raw peers of the fault suite: python3 programs that do what Deno cannot express (a reset
 * with SO_LINGER 0, a client bound to a non-UTF-8 Unix address, half a TLS ClientHello, …), run
 * as subprocesses against a server under test (`tests/_faults.ts`).
 * @module
 */
import { hasPeer } from "./_process.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A stream's text as it arrives, with waits for a line. */
export class Collector {
  text = "";
  #changed = Promise.withResolvers<void>();
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = this.#collect(stream);
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        this.text += chunk;
        this.#wake();
      }
    } finally {
      this.#wake();
    }
  }

  #wake(): void {
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  get changed(): Promise<void> {
    return this.#changed.promise;
  }
}

/** Lowercase hex, as the python3 peers take their payloads. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether python3 (the raw peer of most attacks) is installed; prints why tests skip if not. */
export function hasPython(): boolean {
  return hasPeer("python3");
}

/**
 * The raw peers. Each command takes a target (`HOST:PORT`, `[::1]:PORT` or `unix:PATH`) and an
 * optional hex payload, and says what it did on stdout.
 */
const PEERS = String.raw`
import json, os, select, socket, ssl, struct, sys

PATTERN = bytes(range(251)) * 1100

def chunk_at(offset, size):
    start = offset % 251
    return PATTERN[start:start + size]

def say(*words):
    print(*words, flush=True)

def dial(target, rcvbuf=0):
    if target.startswith("unix:"):
        family, address = socket.AF_UNIX, target[5:]
    else:
        host, port = target.rsplit(":", 1)
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        address = (host, int(port))
    s = socket.socket(family, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(address)
    return s

def reset(s):
    # SO_LINGER on, 0 s: close() sends RST instead of FIN.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()

def client_hello():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()

def pump(s, data, on_sent, until):
    """Sends data, then the pattern, reading and discarding echoes, until until() is true."""
    s.setblocking(False)
    pending, sent, eof = data, 0, False
    while not until():
        readable = [] if eof else [s]
        r, w, _ = select.select(readable + [sys.stdin], [s], [], 0.5)
        if s in r:
            try:
                eof = not s.recv(1 << 18)
            except OSError:
                eof = True
        if s in w:
            if not pending:
                pending = chunk_at(sent, 65536)
            try:
                n = s.send(pending)
                pending, sent = pending[n:], sent + n
            except BlockingIOError:
                pass
            except OSError:
                on_sent(sent, True)
                return sent
        on_sent(sent, False)
    return sent

def main(command, target, arg=""):
    data = bytes.fromhex(arg)
    if command == "reset":
        # Connect, send the payload, reset.
        s = dial(target)
        s.sendall(data)
        reset(s)
        say("reset")
    elif command == "connect-reset":
        # Connect, wait for a line on stdin, reset.
        s = dial(target)
        s.sendall(data)
        say("connected")
        sys.stdin.readline()
        reset(s)
        say("reset")
    elif command == "reset-reading":
        # Send the payload and 1 MiB more as fast as the server takes it, and reset with the
        # server still reading.
        s = dial(target)
        s.settimeout(2)
        sent = 0
        try:
            s.sendall(data)
            while sent < 1 << 20:
                sent += s.send(chunk_at(sent, 65536))
        except OSError:
            pass
        reset(s)
        say("reset after", sent)
    elif command == "reset-writing":
        # Never read, with a small receive buffer, so that the server's writes stall; then reset.
        # No payload: read one byte first (a greeting is being written). A payload: send it
        # over and over until a send stays blocked 0.5 s (the server stopped reading because
        # its own writes stall).
        s = dial(target, rcvbuf=4096)
        sent = 0
        if not data:
            s.recv(1)
        else:
            s.settimeout(0.5)
            try:
                while sent < 64 << 20:
                    s.sendall(data)
                    sent += len(data)
            except socket.timeout:
                pass
            except OSError as error:
                say("the server ended it early:", error)
        reset(s)
        say("reset after", sent)
    elif command == "half-hello":
        hello = client_hello()
        s = dial(target)
        s.sendall(hello[: len(hello) // 2])
        reset(s)
        say("reset after", len(hello) // 2, "of", len(hello))
    elif command == "pump-reset":
        # Keep sending (the payload, then the pattern); "sending" once 256 KiB are out; reset on
        # a line on stdin.
        s = dial(target)
        told = [False]
        def on_sent(sent, failed):
            if not told[0] and (sent >= 1 << 18 or failed):
                told[0] = True
                say("sending")
        stdin_ready = lambda: sys.stdin in select.select([sys.stdin], [], [], 0)[0]
        pump(s, data, on_sent, stdin_ready)
        sys.stdin.readline()
        reset(s)
        say("reset")
    elif command == "echo-drain":
        # Keep sending the pattern and reading the echo until the server's EOF; "sending" after
        # 1 MiB. Then report what came back and whether it was intact.
        s = dial(target)
        s.setblocking(False)
        sent = received = 0
        intact, was_reset, told = True, False, False
        while True:
            r, w, _ = select.select([s], [s], [], 10)
            if not r and not w:
                say(json.dumps({"error": "stalled for 10 s"}))
                return
            if s in r:
                try:
                    got = s.recv(1 << 18)
                except ConnectionResetError:
                    was_reset = True
                    break
                if not got:
                    break
                if got != chunk_at(received, len(got)):
                    intact = False
                received += len(got)
            if s in w:
                try:
                    sent += s.send(chunk_at(sent, 65536))
                except BlockingIOError:
                    pass
                except OSError:
                    was_reset = True
                    break
                if not told and sent >= 1 << 20:
                    told = True
                    say("sending")
        s.close()
        say(json.dumps({"sent": sent, "received": received, "intact": intact, "reset": was_reset}))
    elif command in ("odd-unix", "odd-unix-dgram"):
        # A peer bound to an abstract name that is not UTF-8 and holds a terminal escape.
        path = target[len("unix:"):]
        kind = socket.SOCK_DGRAM if command == "odd-unix-dgram" else socket.SOCK_STREAM
        s = socket.socket(socket.AF_UNIX, kind)
        s.bind(b"\0\xff\x1b[2J-" + str(os.getpid()).encode())
        if kind == socket.SOCK_DGRAM:
            s.sendto(data, path)
            say("sent")
            return
        s.settimeout(5)
        s.connect(path)
        reply = b""
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while True:
                got = s.recv(65536)
                if not got:
                    break
                reply += got
        except OSError as error:
            say("error", error)
        say("reply", reply.hex())
    elif command == "dgram":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(data, target[len("unix:"):])
        say("sent")
    else:
        raise SystemExit("unknown command " + command)

main(*sys.argv[1:])
`;

/** Runs one raw peer command to completion; throws when it fails. Returns its stdout. */
export async function python(command: string, target: string, payloadHex = ""): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command("python3", {
    args: ["-c", PEERS, command, target, payloadHex],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = decoder.decode(stdout);
  if (code !== 0) {
    throw new Error(
      `python3 ${command} ${target} failed (${code}): ${out}${decoder.decode(stderr)}`,
    );
  }
  return out;
}

/** A raw peer that runs on while the test acts: wait for its lines, poke it through stdin. */
export class PythonPeer implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly #stdout: Collector;
  readonly #stderr: Collector;
  readonly #status: Promise<Deno.CommandStatus>;

  constructor(command: string, target: string, payloadHex = "") {
    this.child = new Deno.Command("python3", {
      args: ["-c", PEERS, command, target, payloadHex],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdout = new Collector(this.child.stdout);
    this.#stderr = new Collector(this.child.stderr);
    this.#status = this.child.status;
  }

  /** Waits for a stdout line that matches. */
  async waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    let ended = false;
    this.#status.finally(() => ended = true);
    const deadline = performance.now() + timeoutMs;
    while (true) {
      const match = this.#stdout.text.match(pattern);
      if (match) return match;
      if (ended || performance.now() > deadline) {
        throw new Error(
          `python3 peer: no line matching ${pattern}: ${this.#stdout.text}${this.#stderr.text}`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#stdout.changed,
        this.#status,
        new Promise((r) => timer = setTimeout(r, deadline - performance.now())),
      ]);
      clearTimeout(timer);
    }
  }

  /** Writes a line to its stdin. */
  async poke(): Promise<void> {
    const writer = this.child.stdin.getWriter();
    try {
      await writer.write(encoder.encode("go\n"));
    } finally {
      writer.releaseLock();
    }
  }

  /** Waits for the exit (killed after `timeoutMs`); returns its stdout. */
  async finish(timeoutMs = 15_000): Promise<string> {
    const timer = setTimeout(() => this.#kill(), timeoutMs);
    try {
      const status = await this.#status;
      await Promise.all([this.#stdout.done, this.#stderr.done]);
      if (!status.success) {
        throw new Error(`python3 peer failed: ${this.#stdout.text}${this.#stderr.text}`);
      }
      return this.#stdout.text;
    } finally {
      clearTimeout(timer);
    }
  }

  #kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch { /* ended */ }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.child.stdin.close().catch(() => {});
    this.#kill();
    await this.#status;
    await Promise.all([this.#stdout.done, this.#stderr.done]);
  }
}
