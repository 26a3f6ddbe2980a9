"""Benchmark fixture, not a user script: Python's asyncio echo server (uvloop when installed).

    python3 scripts/bench/python_asyncio_server.py --port 0

Prints `Listening on <addr>` to stderr and stops on SIGINT/SIGTERM.
"""
import asyncio
import signal
import sys

try:
    import uvloop  # the fastest event loop for asyncio, used when it is installed

    uvloop.install()
    LOOP = "uvloop"
except ImportError:
    LOOP = "asyncio"


def flag(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

    # Flow control: stop reading while the client is not taking its echo, as the others do.
    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()

    def eof_received(self):
        return False  # close once everything written has gone out


async def main():
    host = flag("--host", "127.0.0.1").strip("[]")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, host, int(flag("--port", "0")))
    address, port = server.sockets[0].getsockname()[:2]
    shown = f"[{address}]" if ":" in address else address
    print(f"Listening on {shown}:{port}", file=sys.stderr, flush=True)
    print(f"event loop: {LOOP}", file=sys.stderr, flush=True)
    stop = loop.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set_result, None)
    await stop
    server.close()


asyncio.run(main())
