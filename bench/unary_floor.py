"""The least a unary call can cost on the daemon's kind of gRPC server, beside a bare grpcio echo.

Five echo servers, each in a process of its own, answer the same 96-byte message; blocks of calls
to each alternate (as in `order_entry.py`), so all see the machine at the same moment:

- the bare grpcio echo (a synchronous server and its thread pool): `order_entry.py`'s reference;
- a grpc.aio server whose handler is a coroutine, on an asyncio loop and on uvloop (the daemon's);
- the same, with the handler handing the request to another thread and awaiting its answer
  (a `Promise`, as order entry hands its command to the engine thread): the loop -> thread ->
  loop hop every order pays, with no work on either side.

    python bench/unary_floor.py [--calls 3000]
"""

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

import grpc

SERVER = """
import asyncio, queue, sys, threading
from concurrent.futures import ThreadPoolExecutor
import grpc

kind, port = sys.argv[1], sys.argv[2]
if kind == "echo":
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda request, _context: request)})
    server = grpc.server(ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("127.0.0.1:" + port)
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()
    sys.exit()

from tradsys.daemon.promise import Promise

inbox = queue.SimpleQueue()

def worker():
    while True:
        promise, request = inbox.get()
        promise.set_result(request)

threading.Thread(target=worker, daemon=True).start()

async def echo(request, _context):
    return request

async def hop(request, _context):
    promise = Promise()
    inbox.put((promise, request))
    return await promise.result(10)

async def main():
    behavior = hop if kind.startswith("hop") else echo
    handler = grpc.method_handlers_generic_handler("bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(behavior)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("127.0.0.1:" + port)
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()

if kind.endswith("uvloop"):
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""

KINDS = {
    "echo": "bare grpcio echo (sync server)",
    "aio-asyncio": "grpc.aio coroutine, asyncio loop",
    "aio-uvloop": "grpc.aio coroutine, uvloop",
    "hop-asyncio": "+ loop -> thread -> loop, asyncio",
    "hop-uvloop": "+ loop -> thread -> loop, uvloop",
}
BLOCK = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}")
    procs, calls = [], {}
    try:
        for kind in KINDS:
            port = free_port()
            proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(port)], stdout=subprocess.PIPE, text=True)
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            calls[kind] = grpc.insecure_channel(f"127.0.0.1:{port}").unary_unary("/bench.Echo/Echo")
        payload = b"x" * 96
        for call in calls.values():
            for _ in range(200):
                call(payload)
        samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for _ in range(0, args.calls, BLOCK):
            for kind, call in calls.items():
                for _ in range(BLOCK):
                    start = time.perf_counter()
                    call(payload)
                    samples[kind].append(time.perf_counter() - start)
                time.sleep(0.005)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    echo = statistics.median(samples["echo"])
    for kind, label in KINDS.items():
        p50 = statistics.median(samples[kind])
        print(f"  {label:36s} p50 {p50 * 1e6:6.0f} us  ({p50 / echo:.2f}x echo)")
    for loop in ("asyncio", "uvloop"):
        hop = statistics.median(samples[f"hop-{loop}"]) - statistics.median(samples[f"aio-{loop}"])
        print(f"  the hop alone, {loop + ':':8s} {hop * 1e6:5.0f} us ({hop / echo:.2f}x echo)")


if __name__ == "__main__":
    main()
