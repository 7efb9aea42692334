"""Load test of the web API: start `voicegender serve` on loopback, send N concurrent uploads, report latency.

    python benchmarks/web_load.py                      # 50 uploads of 2 s synthetic voices, all at once
    python benchmarks/web_load.py --explain --seconds 4 --requests 20

The server runs in its own process (so the client does not compete with it for the GIL) on a socket this script
binds to 127.0.0.1 and hands over, so no port race and nothing listens beyond this machine. Every request has a
timeout and the run stops by itself; the exit code is 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx
import numpy as np
import soundfile as sf

from voicegender.audio.synth import FEMALE_F0, MALE_F0, synth_voice

SERVER = """
import sys, uvicorn
from voicegender.web.app import create_app
app = create_app(model=sys.argv[2] or None, max_upload_mb=25)
uvicorn.run(app, fd=int(sys.argv[1]), log_level="warning")
"""


def make_clips(n: int, seconds: float) -> list[tuple[str, bytes]]:
    """n synthetic WAVs (alternating female/male, different seeds) as (name, bytes)."""
    clips = []
    for i in range(n):
        f0 = FEMALE_F0 if i % 2 == 0 else MALE_F0
        buf = io.BytesIO()
        sf.write(buf, synth_voice(f0 * (1 + 0.02 * (i % 5)), seconds, 16_000, seed=i), 16_000, format="WAV",
                 subtype="PCM_16")
        clips.append((f"clip{i:03d}.wav", buf.getvalue()))
    return clips


def start_server(model: str | None) -> tuple[subprocess.Popen, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(sock.fileno()), model or ""],
                            pass_fds=(sock.fileno(),))
    sock.close()  # the server process holds its own copy
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            return httpx.get(f"{url}/api/health", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"server not ready after {timeout:.0f} s")


async def upload(client: httpx.AsyncClient, url: str, name: str, data: bytes, explain: bool):
    t0 = time.perf_counter()
    try:
        r = await client.post(f"{url}/api/predict", params={"explain": 1} if explain else None,
                              files={"file": (name, data, "audio/wav")})
        error = None if r.status_code == 200 else f"{r.status_code} {r.text[:120]}"
    except httpx.HTTPError as e:
        error = f"{type(e).__name__}: {e}"
    return time.perf_counter() - t0, error


async def run(url: str, clips: list[tuple[str, bytes]], concurrency: int, explain: bool, timeout: float):
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sem = asyncio.Semaphore(concurrency)

    async def one(name: str, data: bytes):
        async with sem:
            return await upload(client, url, name, data, explain)

    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(n, d) for n, d in clips))
        return results, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--requests", type=int, default=50, help="uploads to send")
    p.add_argument("--concurrency", type=int, default=50, help="uploads in flight at once")
    p.add_argument("--seconds", type=float, default=2.0, help="length of each synthetic clip")
    p.add_argument("--explain", action="store_true", help="ask for the activation map too (?explain=1)")
    p.add_argument("--model", default=None, help="checkpoint to serve (default: the shipped model)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before one request counts as failed")
    args = p.parse_args(argv)

    clips = make_clips(args.requests, args.seconds)
    proc, url = start_server(args.model)
    try:
        health = wait_ready(url, proc)
        print(f"server {url}  model {health['model']} v{health['version']}  cores {os.cpu_count()}")
        asyncio.run(run(url, clips[:1], 1, args.explain, args.timeout))  # warm-up: first-call model setup
        results, wall = asyncio.run(run(url, clips, args.concurrency, args.explain, args.timeout))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    latencies = np.array([t for t, _ in results])
    errors = [e for _, e in results if e]
    print(f"{len(results)} uploads of {args.seconds:g} s WAV ({len(clips[0][1]) / 1e3:.0f} kB), "
          f"{args.concurrency} concurrent{', with explain' if args.explain else ''}")
    print(f"latency  p50 {np.percentile(latencies, 50):.2f} s  p99 {np.percentile(latencies, 99):.2f} s  "
          f"mean {statistics.fmean(latencies):.2f} s  max {latencies.max():.2f} s")
    print(f"throughput {len(results) / wall:.1f} req/s over {wall:.1f} s   errors {len(errors)}")
    for e in errors[:5]:
        print(f"  error: {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
