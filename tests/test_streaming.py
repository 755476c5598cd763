"""Streaming through the router: SSE relayed chunk by chunk as it arrives, unchanged and in
order; a client that goes away cancels the upstream request."""

import socket
import time

import httpx
import pytest
from support import base_config, chat, metric, start_router, start_sim, wait_until, write_config


@pytest.fixture(scope="module")
def slow_sim(adapters):
    # 20 tokens, 40 ms apart: a stream that lasts about 0.8 s.
    p = start_sim(adapters, extra=["--ttft-ms", "30", "--itl-ms", "40"])
    yield p
    p.stop()


@pytest.fixture(scope="module")
def slow_router(slow_sim, tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("s") / "c.yaml", base_config([("vllm-0", slow_sim.port)]))
    p = start_router(path)
    yield p
    p.stop()


def events(url: str, body: dict) -> tuple[list[str], list[float], httpx.Headers]:
    out, times = [], []
    start = time.monotonic()
    with httpx.stream("POST", url, json=body, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        headers = r.headers
        for line in r.iter_lines():
            if line:
                out.append(line)
                times.append(time.monotonic() - start)
    return out, times, headers


def normalise(lines: list[str]) -> list[str]:
    # ids and timestamps differ between two requests; everything else must match.
    import json

    out = []
    for line in lines:
        if line == "data: [DONE]":
            out.append(line)
            continue
        v = json.loads(line[len("data: ") :])
        v.pop("id", None)
        v.pop("created", None)
        out.append(json.dumps(v, sort_keys=True))
    return out


def test_stream_is_relayed_unchanged_and_in_order(slow_router, slow_sim):
    body = chat("technical-lora", "hi", max_tokens=20, stream=True, stream_options={"include_usage": True})
    via_router, _, headers = events(f"{slow_router.url}/v1/chat/completions", body)
    direct, _, _ = events(f"{slow_sim.url}/v1/chat/completions", body)
    assert normalise(via_router) == normalise(direct)
    assert via_router[-1] == "data: [DONE]"
    assert '"usage"' in via_router[-2]
    assert headers["x-lora-router-adapter"] == "technical-lora"


def test_chunks_arrive_before_the_stream_ends(slow_router):
    body = chat(text="python question", max_tokens=20, stream=True)
    lines, times, headers = events(f"{slow_router.url}/v1/chat/completions", body)
    assert headers["x-lora-router-category"] == "technical"
    assert len(lines) == 1 + 20 + 1  # role chunk, 20 tokens, [DONE]
    total = times[-1]
    assert total > 0.6
    # The first token arrived long before the end: nothing was buffered.
    assert times[1] < total / 3
    # And tokens kept arriving spread over the stream.
    assert times[10] < total * 0.8


def test_routed_stream_rewrites_and_completions_stream(slow_router):
    r = httpx.post(
        f"{slow_router.url}/v1/completions",
        json={"model": "MoM", "prompt": "symptom list", "stream": True, "max_tokens": 3},
    )
    assert r.status_code == 200
    assert r.headers["x-lora-router-adapter"] == "medical-lora"
    assert r.text.rstrip().endswith("data: [DONE]")
    assert r.text.count("text_completion") == 3


def test_client_disconnect_cancels_upstream(slow_router, slow_sim):
    cancelled_before = metric(slow_sim.url, "lora_router_sim:requests_cancelled_total")
    with httpx.stream(
        "POST", f"{slow_router.url}/v1/chat/completions", json=chat(text="rust", max_tokens=200, stream=True)
    ) as r:
        it = r.iter_lines()
        got = [next(it) for _ in range(3)]
        assert got[0].startswith("data: ")
    # The client is gone; the simulator must see its request cancelled well before the
    # 200 tokens (8 s) would have finished.
    wait_until(lambda: metric(slow_sim.url, "lora_router_sim:requests_cancelled_total") > cancelled_before, timeout=3)
    wait_until(lambda: metric(slow_sim.url, "vllm:num_requests_running") == 0, timeout=3)
    wait_until(lambda: metric(slow_router.url, "lora_router_client_disconnects_total") >= 1, timeout=3)


def test_raw_socket_disconnect_mid_stream(slow_router, slow_sim):
    """The same with a client that simply closes its socket."""
    before = metric(slow_sim.url, "lora_router_sim:requests_cancelled_total")
    import json

    body = json.dumps(chat(text="rust", max_tokens=200, stream=True)).encode()
    s = socket.create_connection((slow_router.host, slow_router.port))
    s.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    data = b""
    while b"data:" not in data:
        data += s.recv(4096)
    s.close()
    wait_until(lambda: metric(slow_sim.url, "lora_router_sim:requests_cancelled_total") > before, timeout=3)
