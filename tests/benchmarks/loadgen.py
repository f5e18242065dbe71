"""A lean closed-loop HTTP/1.1 load generator for the API benchmark (SPEC §11).

What it does: `clients` coroutines in one asyncio event loop (one thread of the calling process)
each hold one keep-alive TCP connection to the server and send `GET` requests back to back, the
next as soon as the previous answer has fully arrived (a closed loop: at most `clients` requests
are in flight). A request's latency runs from just before its bytes are written to the last byte
of its body. Client n starts at path n of the list and walks it round-robin. Every answer must be
200, else the run fails with the status and the start of the body. A connection the server
closes (`Connection: close`, or end of stream) is reopened when the next request starts, inside
that request's latency.

Why hand-written rather than httpx (which the benchmark used before): the generator shares the
machine's cores with the server, and httpx's client layers (connection pool, h11 state machine,
header objects) cost more CPU per request than Django answering `/health/live`, so the figure
measured the generator more than the server. This loop does the least HTTP/1.1 a keep-alive GET
needs: one `write`, `readuntil(b"\\r\\n\\r\\n")` for the head, and `readexactly` for a
`Content-Length` body (chunked bodies are read too, in case a response has no length).
"""

import asyncio
import time
from urllib.parse import urlsplit


async def _open(host: str, port: int):
    return await asyncio.open_connection(host, port)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, keep_alive = None, False, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "connection" and value.strip().lower() == "close":
            keep_alive = False
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))  # the chunk and its CRLF
            if size == 0:
                break
        body = b"".join(p[:-2] for p in parts)
    elif length is not None:
        body = await reader.readexactly(length)
    else:  # no length: the body runs to the end of the stream
        body, keep_alive = await reader.read(), False
    return status, body, keep_alive


async def closed_loop(
    base: str, paths: list[str], *, clients: int, seconds: float, headers: dict | None = None
) -> list[float]:
    """Latencies in milliseconds of every request answered within `seconds`."""
    url = urlsplit(base)
    host, port = url.hostname, url.port or 80
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    requests = [
        f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\n{extra}\r\n".encode("latin-1")
        for path in paths
    ]
    timings: list[float] = []
    deadline = time.perf_counter() + seconds

    async def one_client(n: int) -> None:
        reader, writer = await _open(host, port)
        keep_alive, i = True, n
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                if not keep_alive:
                    writer.close()
                    reader, writer = await _open(host, port)
                writer.write(requests[i % len(requests)])
                status, body, keep_alive = await _read_response(reader)
                timings.append((time.perf_counter() - started) * 1000)
                assert status == 200, (paths[i % len(paths)], status, body[:500])
                i += 1
        finally:
            writer.close()

    await asyncio.gather(*(one_client(n) for n in range(clients)))
    return timings


def run(base: str, paths: list[str], *, clients: int, seconds: float, headers=None) -> list[float]:
    """`closed_loop` in a fresh event loop."""
    return asyncio.run(closed_loop(base, paths, clients=clients, seconds=seconds, headers=headers))
