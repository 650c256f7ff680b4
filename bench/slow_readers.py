#!/usr/bin/env python3
"""Slow readers for bench/status_bench.sh: N connections to HOST:PORT that
trickle. Half send their request a few bytes at a time (a slow phone on a bad
link); half send it whole and then read the answer a few hundred bytes a second
through a small receive buffer. Every connection starts over when its answer is
in. Runs for SECONDS, then prints how many answers arrived and how many
connections were refused or dropped. Loopback only; bounded in count and time.

    slow_readers.py HOST PORT PATH CONNECTIONS SECONDS
"""
import asyncio
import socket
import sys
import time

HOST, PORT, PATH = sys.argv[1], int(sys.argv[2]), sys.argv[3]
N, SECONDS = int(sys.argv[4]), float(sys.argv[5])
if not HOST.startswith("127."):
    sys.exit("slow_readers.py: loopback addresses only")
REQUEST = f"GET {PATH} HTTP/1.1\r\nHost: status.example\r\nUser-Agent: slow-reader\r\n\r\n".encode()
deadline = time.monotonic() + SECONDS
answers = 0
failures = 0


async def reader(index: int) -> None:
    global answers, failures
    trickle_request = index % 2 == 0
    while time.monotonic() < deadline:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (HOST, PORT))
            r, w = await asyncio.open_connection(sock=sock, limit=4096)
        except OSError:
            failures += 1
            await asyncio.sleep(0.5)
            continue
        try:
            while time.monotonic() < deadline:
                if trickle_request:
                    for i in range(0, len(REQUEST), 8):  # 8 bytes every 200 ms: ~2 s a request
                        w.write(REQUEST[i:i + 8])
                        await w.drain()
                        await asyncio.sleep(0.2)
                else:
                    w.write(REQUEST)
                    await w.drain()
                head = await r.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while length > 0 and time.monotonic() < deadline:
                    chunk = await r.read(min(length, 256 if not trickle_request else 4096))
                    if not chunk:
                        raise ConnectionError("closed mid-answer")
                    length -= len(chunk)
                    if not trickle_request:
                        await asyncio.sleep(0.1)  # 256 bytes per 100 ms
                if length == 0:
                    answers += 1
        except (OSError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            failures += 1
        finally:
            w.close()


async def main() -> None:
    tasks = []
    for i in range(N):
        tasks.append(asyncio.create_task(reader(i)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # connect in waves, not one SYN flood
    await asyncio.wait(tasks, timeout=SECONDS + 10)
    for t in tasks:
        t.cancel()


asyncio.run(main())
print(f"slow readers: {N} connections, {answers} answers, {failures} refused or dropped")
