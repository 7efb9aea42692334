"""Flood test of the web server: 200 concurrent requests of every kind a real deployment meets, at once.

    python benchmarks/web_flood.py                     # 200 requests: valid, oversize, non-audio, truncated, ...
    python benchmarks/web_flood.py --requests 400 --max-upload-mb 2

It starts the real command, ``voicegender serve``, on a free loopback port, with an access token (from the
environment, as a deployment would) and its own empty temp directory (``TMPDIR``), then sends, all at once and
in a seeded random order:

* ``valid``: 2 s synthetic WAVs with the token (expected: 200, or 503 when the server is full);
* ``oversize``: bodies of 1.5 x the limit, half with Content-Length (413 before reading), half chunked (413 at
  the limit while streaming, or 503);
* ``non_audio``: a text file (415, or 503);
* ``no_token``: a valid WAV without the token (401);
* ``truncated``: raw socket, complete HTTP framing but the multipart body cut off inside the file (400, or 503);
* ``disconnect``: raw socket, the client goes away: a third of them after a third of the body (close), a third
  likewise with a reset, a third after the whole body, while the server is predicting.

Rules (exit code 1 if one is broken): only 2xx/4xx/503 answers, each kind gets one of its expected answers;
valid, non-audio, truncated and token-less requests all get an answer (no reset, no timeout); the server is alive
afterwards, its log holds no traceback, and its temp directory holds no file. It reports p50/p99 of the valid
requests answered 200, the server's RSS (and peak) before and after, its open file descriptors, and the load.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import random
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from web_load import make_clips, wait_ready  # benchmarks/web_load.py: synthetic WAVs, wait for /api/health

KINDS = {  # kind: (share of the requests, answers that count as correct)
    "valid": (0.5, {200, 503}),
    "oversize": (0.1, {413, 503}),
    "non_audio": (0.1, {415, 503}),
    "no_token": (0.1, {401}),
    "truncated": (0.1, {400, 503}),
    "disconnect": (0.1, set()),  # nobody is left to answer
}
MUST_ANSWER = {"valid", "non_audio", "no_token", "truncated"}
BOUNDARY = "flood-boundary-7b1f"


@dataclass
class Outcome:
    kind: str
    status: int | None  # None: no answer (connection error, timeout, or the client left on purpose)
    seconds: float
    error: str | None = None


# --- the server ---------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, workdir: Path, token: str) -> tuple[subprocess.Popen, str, dict]:
    """`voicegender serve` on a free loopback port (a few tries: the port is free when picked, not guaranteed
    when the server binds it), with TMPDIR = workdir/tmp and the token in the environment."""
    env = {**os.environ, "TMPDIR": str(workdir / "tmp"), "VOICEGENDER_TOKEN": token}
    for _ in range(3):
        port = free_port()
        command = [sys.executable, "-m", "voicegender", "serve", "--port", str(port),
                   "--max-upload-mb", f"{args.max_upload_mb:g}", *(["--model", args.model] if args.model else [])]
        with open(workdir / "server.log", "ab") as log:
            proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            return proc, url, wait_ready(url, proc)
        except SystemExit:
            if proc.poll() is None:  # a timeout, not a lost port
                stop_server(proc)
                raise
    raise SystemExit("the server did not start (see its log above)")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def proc_status(pid: int) -> dict[str, float]:
    """RSS and peak RSS (MB) and open file descriptors of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "peak_mb": int(fields["VmHWM"].split()[0]) / 1024,
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- the clients ----------------------------------------------------------------------------------------------------
def multipart(name: str, data: bytes, close: bool = True) -> bytes:
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + (f"\r\n--{BOUNDARY}--\r\n".encode() if close else b"")


def request_head(port: int, length: int, token: str) -> bytes:
    return (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n"
            "Connection: close\r\n\r\n").encode()


async def http_upload(client: httpx.AsyncClient, kind: str, url: str, name: str, data: bytes,
                      headers: dict[str, str], chunked: bool = False) -> Outcome:
    t0 = time.perf_counter()
    try:
        if chunked:  # no Content-Length: the server has to count the bytes as they arrive
            body = multipart(name, data)

            async def stream():
                for i in range(0, len(body), 65_536):
                    yield body[i:i + 65_536]

            r = await client.post(f"{url}/api/predict", content=stream(), headers={
                **headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        else:
            r = await client.post(f"{url}/api/predict", files={"file": (name, data)}, headers=headers)
        return Outcome(kind, r.status_code, time.perf_counter() - t0,
                       None if r.status_code < 300 else r.json().get("detail"))
    except (httpx.HTTPError, ValueError) as e:  # ValueError: an answer that is not JSON
        return Outcome(kind, None, time.perf_counter() - t0, f"{type(e).__name__}: {e}")


async def raw_truncated(port: int, data: bytes, token: str, timeout: float) -> Outcome:
    """Complete HTTP framing, but the multipart body stops inside the file (no closing boundary)."""
    t0 = time.perf_counter()
    body = multipart("cut.wav", data[:len(data) // 2], close=False)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request_head(port, len(body), token) + body)
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(), timeout)  # Connection: close, so read to the end
        finally:
            writer.close()
        status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None
        return Outcome("truncated", status, time.perf_counter() - t0, None if status else f"reply {reply[:60]!r}")
    except (TimeoutError, OSError) as e:
        return Outcome("truncated", None, time.perf_counter() - t0, f"{type(e).__name__}: {e}")


async def raw_disconnect(port: int, data: bytes, token: str, how: str, pause: float) -> Outcome:
    """Announce the whole body, send a third of it (``how`` = close / reset) or all of it (``answer``: leave
    while the server works on it), wait ``pause`` seconds and leave."""
    t0 = time.perf_counter()
    body = multipart("gone.wav", data)
    sent = body if how == "answer" else body[:len(body) // 3]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_head(port, len(body), token) + sent)
        await writer.drain()
        await asyncio.sleep(pause)
        if how == "reset":  # SO_LINGER 0: close() sends RST instead of FIN
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return Outcome("disconnect", None, time.perf_counter() - t0)
    except OSError as e:
        return Outcome("disconnect", None, time.perf_counter() - t0, f"{type(e).__name__}: {e}")


async def flood(url: str, token: str, args: argparse.Namespace) -> tuple[list[Outcome], float]:
    rng = random.Random(args.seed)
    port = int(url.rsplit(":", 1)[1])
    counts = {kind: round(share * args.requests) for kind, (share, _) in KINDS.items()}
    counts["valid"] += args.requests - sum(counts.values())
    clips = make_clips(counts["valid"] + counts["no_token"] + counts["truncated"] + counts["disconnect"],
                       args.seconds)
    limit = int(args.max_upload_mb * 1e6)
    big = bytes(int(1.5 * limit))
    text = b"These are meeting notes, not a recording.\n" * 500
    auth = {"Authorization": f"Bearer {token}"}
    client = httpx.AsyncClient(timeout=args.timeout, limits=httpx.Limits(max_connections=args.requests))
    jobs = []
    clip = iter(clips)
    for kind, n in counts.items():
        for i in range(n):
            if kind == "valid":
                jobs.append(http_upload(client, kind, url, *next(clip), auth))
            elif kind == "oversize":
                jobs.append(http_upload(client, kind, url, "big.wav", big, auth, chunked=i % 2 == 1))
            elif kind == "non_audio":
                jobs.append(http_upload(client, kind, url, "notes.txt", text, auth))
            elif kind == "no_token":
                jobs.append(http_upload(client, kind, url, *next(clip), {}))
            elif kind == "truncated":
                jobs.append(raw_truncated(port, next(clip)[1], token, args.timeout))
            else:
                jobs.append(raw_disconnect(port, next(clip)[1], token, ("close", "reset", "answer")[i % 3],
                                           rng.uniform(0.0, 0.5)))
    rng.shuffle(jobs)
    async with client:
        t0 = time.perf_counter()
        outcomes = await asyncio.gather(*jobs)
        return list(outcomes), time.perf_counter() - t0


# --- the report ---------------------------------------------------------------------------------------------------
def count_files(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*"))


def settle(folder: Path, files: int, pid: int, fds: int, seconds: float = 10.0) -> int:
    """Files in the server's temp dir once the requests of departed clients have finished and their sockets are
    closed (back to ``files`` files and ``fds`` descriptors, or at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    while ((n := count_files(folder)) > files or proc_status(pid)["fds"] > fds) and time.monotonic() < deadline:
        time.sleep(0.2)
    return n


def report(outcomes: list[Outcome], wall: float, before: dict, afters: list[dict], files: tuple[int, int],
           tracebacks: int, alive: bool, loads: tuple[str, str], args: argparse.Namespace) -> list[str]:
    """Print the markdown tables; return the broken rules."""
    statuses = sorted({o.status for o in outcomes if o.status is not None})
    rounds = f"{args.rounds} rounds of " if args.rounds > 1 else ""
    print(f"\n{rounds}{args.requests} requests at once in {wall:.1f} s, {args.max_upload_mb:g} MB limit, "
          f"{args.seconds:g} s WAVs, {os.cpu_count()} cores, load average {loads[0]} before, {loads[1]} after\n")
    print("| kind | sent | " + " | ".join(str(s) for s in statuses) + " | no answer |")
    print("| --- | ---: | " + " | ".join("---:" for _ in statuses) + " | ---: |")
    for kind in KINDS:
        mine = [o for o in outcomes if o.kind == kind]
        by_status = collections.Counter(o.status for o in mine)
        print(f"| {kind} | {len(mine)} | " + " | ".join(str(by_status.get(s, "")) for s in statuses)
              + f" | {by_status.get(None, '')} |")
    ok = np.array([o.seconds for o in outcomes if o.kind == "valid" and o.status == 200])
    latency = f"{np.percentile(ok, 50):.2f} s / {np.percentile(ok, 99):.2f} s" if len(ok) else "n/a"
    print("\n| measure | value |\n| --- | --- |")
    busy = [o.seconds for o in outcomes if o.status == 503]
    print(f"| valid answered 200: p50 / p99 | {latency} (n = {len(ok)}) |")
    if busy:
        print(f"| any answered 503: p50 / max | {np.percentile(busy, 50):.2f} s / {max(busy):.2f} s "
              f"(n = {len(busy)}) |")
    rss = ", ".join(f"{a['rss_mb']:.0f}" for a in afters)
    print(f"| server RSS before / after{' each round' if len(afters) > 1 else ''} (peak) | "
          f"{before['rss_mb']:.0f} MB / {rss} MB ({afters[-1]['peak_mb']:.0f} MB) |")
    print(f"| open file descriptors before / after | {before['fds']} / {afters[-1]['fds']} |")
    print(f"| files in the server's temp dir before / after | {files[0]} / {files[1]} |")
    print(f"| tracebacks in the server's log | {tracebacks} |")

    broken = []
    if bad := [o for o in outcomes if o.status is not None and not (o.status < 500 or o.status == 503)]:
        broken.append(f"{len(bad)} answers outside 2xx/4xx/503: {sorted({o.status for o in bad})}")
    if wrong := [o for o in outcomes if o.status is not None and o.status not in KINDS[o.kind][1]]:
        broken.append(f"{len(wrong)} unexpected answers: " + ", ".join(
            sorted({f"{o.kind} -> {o.status} ({o.error})" for o in wrong})[:5]))
    if lost := [o for o in outcomes if o.kind in MUST_ANSWER and o.status is None]:
        broken.append(f"{len(lost)} requests without an answer: " + ", ".join(
            sorted({f"{o.kind}: {o.error}" for o in lost})[:5]))
    if not len(ok):
        broken.append("no valid request was answered 200")
    if not alive:
        broken.append("the server did not answer /api/health after the flood")
    if tracebacks:
        broken.append(f"{tracebacks} tracebacks in the server's log")
    if files[1] > files[0]:
        broken.append(f"{files[1] - files[0]} files left in the server's temp dir")
    print("\n" + ("\n".join(f"FAIL: {b}" for b in broken) if broken else "PASS: every rule holds"))
    return broken


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--requests", type=int, default=200, help="requests sent at once (all kinds together)")
    p.add_argument("--seconds", type=float, default=2.0, help="length of each valid synthetic WAV")
    p.add_argument("--max-upload-mb", type=float, default=1.0, help="the server's upload limit (oversize = 1.5x)")
    p.add_argument("--model", default=None, help="checkpoint to serve (default: the shipped model)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before one request counts as unanswered")
    p.add_argument("--seed", type=int, default=0, help="order of the requests and who disconnects how")
    p.add_argument("--rounds", type=int, default=1, help="floods one after the other (RSS after each: a leak grows)")
    args = p.parse_args(argv)

    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="voicegender-flood-") as tmp:
        workdir = Path(tmp)
        (workdir / "tmp").mkdir()
        proc, url, health = start_server(args, workdir, token)
        try:
            print(f"server {url}  model {health['model']} v{health['version']}  token required: "
                  f"{health.get('token_required')}")
            warm = make_clips(1, args.seconds)[0]
            r = httpx.post(f"{url}/api/predict", files={"file": warm}, headers={"Authorization": f"Bearer {token}"},
                           timeout=args.timeout)  # first-call model set-up, outside the measurement
            if r.status_code != 200:
                raise SystemExit(f"warm-up request failed: {r.status_code} {r.text[:200]}")
            load_before, before, files_before = load_average(), proc_status(proc.pid), count_files(workdir / "tmp")
            outcomes, wall, afters = [], 0.0, []
            for _ in range(args.rounds):
                more, seconds = asyncio.run(flood(url, token, args))
                outcomes, wall = outcomes + more, wall + seconds
                files_after = settle(workdir / "tmp", files_before, proc.pid, before["fds"])
                afters.append(proc_status(proc.pid))
            try:
                alive = httpx.get(f"{url}/api/health", timeout=30).status_code == 200
            except httpx.HTTPError:
                alive = False
            load_after = load_average()
        finally:
            stop_server(proc)
        log = (workdir / "server.log").read_text(errors="replace")
    tracebacks = log.count("Traceback (most recent call last)")
    if tracebacks:
        print(log[-4000:], file=sys.stderr)
    broken = report(outcomes, wall, before, afters, (files_before, files_after), tracebacks, alive,
                    (load_before, load_after), args)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
