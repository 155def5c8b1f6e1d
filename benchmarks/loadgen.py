"""A small HTTP/1.1 keep-alive load generator, so the floor and the server are driven alike.

``run(port, path, body, headers, clients, seconds)`` keeps ``clients`` connections busy for
``seconds`` and returns the latencies of every completed request (all must answer 200).
Runs in its own process (see ``measure``) so its CPU use never shares the server's GIL.
"""

import asyncio
import multiprocessing
import time


async def _client(port, request: bytes, deadline: float, latencies: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _run(port, path, body, headers, clients, seconds):
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body
    latencies, errors = [], []
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(_client(port, request, deadline, latencies, errors) for _ in range(clients)))
    return latencies, errors


def _worker(queue, args):
    queue.put(asyncio.run(_run(*args)))


def measure(port, path, body: bytes, headers: dict, clients: int, seconds: float) -> dict:
    """Throughput and latency percentiles of ``clients`` concurrent keep-alive clients."""
    queue = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(
        target=_worker, args=(queue, (port, path, body, headers, clients, seconds))
    )
    process.start()
    latencies, errors = queue.get()
    process.join()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. status {errors[0]}")
    latencies.sort()
    return {
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }
