"""The vLLM simulator answers as vLLM 0.32 does (../shared/reference/vllm-lora-api.md):
routes, status codes, bodies, SSE shapes, LoRA slots and metrics."""

import json
import re
import time

import httpx
import pytest
from support import make_adapters, metric, start_sim


@pytest.fixture(scope="module")
def adapter_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    dirs = make_adapters(root, ["a", "b", "c", "d"])
    dirs.update(make_adapters(root, ["big"], rank=32))
    (root / "not-an-adapter").mkdir()
    dirs["not-an-adapter"] = str(root / "not-an-adapter")
    return dirs


@pytest.fixture(scope="module")
def vsim(adapter_dirs):
    p = start_sim({"a": adapter_dirs["a"], "b": adapter_dirs["b"]}, max_loras=2, extra=["--lora-load-ms", "100"])
    yield p
    p.stop()


def test_models_list_shape(vsim, adapter_dirs):
    data = httpx.get(f"{vsim.url}/v1/models").json()
    assert data["object"] == "list"
    base, a, b = data["data"]
    assert base["id"] == "tiny-base" and base["parent"] is None and base["max_model_len"] == 2048
    assert (
        a["id"] == "a" and a["parent"] == "tiny-base" and a["root"] == adapter_dirs["a"] and a["max_model_len"] is None
    )
    assert b["id"] == "b"
    perm = base["permission"][0]
    assert perm["object"] == "model_permission" and perm["id"].startswith("modelperm-")
    for card in (base, a, b):
        assert set(card) == {"id", "object", "created", "owned_by", "root", "parent", "max_model_len", "permission"}


def test_chat_echoes_adapter_and_differs_per_model(vsim):
    answers = {}
    for model in ["tiny-base", "a", "b"]:
        r = httpx.post(
            f"{vsim.url}/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
        )
        assert r.status_code == 200
        body = r.json()
        assert body["model"] == model
        assert re.fullmatch(r"chatcmpl-[0-9a-f]{16}", body["id"])
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == 16
        answers[model] = body["choices"][0]["message"]["content"]
    assert len(set(answers.values())) == 3
    # Omitting model serves the base model.
    r = httpx.post(f"{vsim.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.json()["model"] == "tiny-base"


def test_request_id_header_becomes_completion_id(vsim):
    r = httpx.post(
        f"{vsim.url}/v1/completions", json={"prompt": "x", "max_tokens": 2}, headers={"X-Request-Id": "router-test-1"}
    )
    assert r.json()["id"] == "cmpl-router-test-1"


def test_unknown_model_404(vsim):
    r = httpx.post(
        f"{vsim.url}/v1/chat/completions", json={"model": "tiny-base:a", "messages": [{"role": "user", "content": "x"}]}
    )
    assert r.status_code == 404
    assert r.json() == {
        "error": {
            "message": "The model `tiny-base:a` does not exist. Valid aliases: tiny-base.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }


def test_max_tokens_over_model_len(vsim):
    r = httpx.post(
        f"{vsim.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "max_tokens": 5000}
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "BadRequestError" and err["param"] == "max_tokens"
    assert err["message"].startswith("max_tokens=5000 cannot be greater than max_model_len=2048.")


def test_stream_shapes(vsim):
    body = {
        "model": "a",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{vsim.url}/v1/chat/completions", json=body) as r:
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        raw = r.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "prompt_token_ids" in chunks[0]
    tokens = chunks[1:5]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "a" for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in tokens] == [None, None, None, "length"]
    assert "stop_reason" in tokens[-1]["choices"][0]
    usage = chunks[5]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4 and "system_fingerprint" in usage
    # Without include_usage: no usage chunk; the last token chunk carries the fingerprint.
    body.pop("stream_options")
    raw = httpx.post(f"{vsim.url}/v1/chat/completions", json=body).text
    chunks = [json.loads(e[6:]) for e in raw.split("\n\n") if e and e != "data: [DONE]"]
    assert len(chunks) == 5 and "system_fingerprint" in chunks[-1]


def test_runtime_load_and_unload_bodies(vsim, adapter_dirs):
    url = vsim.url
    r = httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "c", "lora_path": adapter_dirs["c"]})
    assert (r.status_code, r.text) == (200, "Success: LoRA adapter 'c' added successfully.")
    assert "content-type" not in r.headers
    assert "c" in [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]

    r = httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "c", "lora_path": adapter_dirs["c"]})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "message": "The lora adapter 'c' has already been loaded. "
        "If you want to load the adapter in place, set 'load_inplace' to True.",
        "type": "InvalidUserInput",
        "param": None,
        "code": 400,
    }
    r = httpx.post(
        f"{url}/v1/load_lora_adapter", json={"lora_name": "c", "lora_path": adapter_dirs["c"], "load_inplace": True}
    )
    assert r.status_code == 200

    for path in ["/nonexistent/x", adapter_dirs["not-an-adapter"]]:
        r = httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "d", "lora_path": path})
        assert r.status_code == 404
        assert r.json()["error"]["message"] == "Loading lora d failed: No adapter found for <path>"

    r = httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "big", "lora_path": adapter_dirs["big"]})
    assert r.status_code == 500
    assert "LoRA rank 32 is greater than max_lora_rank 16." in r.json()["error"]["message"]

    r = httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "tiny-base", "lora_path": adapter_dirs["d"]})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "The lora adapter 'tiny-base' conflicts with a served base model."

    for body, field in [({"lora_name": "x"}, "lora_path"), ({"lora_path": "/x"}, "lora_name")]:
        r = httpx.post(f"{url}/v1/load_lora_adapter", json=body)
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["type"] == "Bad Request" and err["param"] == f"body.{field}"
        assert err["message"].startswith("1 validation error:")

    r = httpx.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": "c"})
    assert (r.status_code, r.text) == (200, "Success: LoRA adapter 'c' removed successfully.")
    r = httpx.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": "c"})
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "The lora adapter 'c' cannot be found."
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "c", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404
    r = httpx.post(f"{url}/v1/unload_lora_adapter", json={})
    assert r.status_code == 400 and r.json()["error"]["param"] == "body.lora_name"


def test_runtime_updating_off_gives_fastapi_404(adapter_dirs):
    p = start_sim({"a": adapter_dirs["a"]}, runtime_updates=False)
    try:
        for route in ["/v1/load_lora_adapter", "/v1/unload_lora_adapter"]:
            r = httpx.post(f"{p.url}{route}", json={"lora_name": "x", "lora_path": adapter_dirs["b"]})
            assert r.status_code == 404
            assert r.json() == {"detail": "Not Found"}
    finally:
        p.stop()


def test_static_adapter_must_be_an_adapter_dir(adapter_dirs):
    import subprocess

    from support import lora_router

    r = subprocess.run(
        lora_router("sim", "--port", "0", "--lora-modules", f"x={adapter_dirs['not-an-adapter']}"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0
    assert "adapter_config.json" in r.stderr


def test_lora_slots_lru_and_load_delay(adapter_dirs):
    # max_loras 2, 100 ms per load: a, b load; a again is resident; d evicts b (least recent).
    p = start_sim(
        {k: adapter_dirs[k] for k in ["a", "b", "d"]},
        max_loras=2,
        extra=["--lora-load-ms", "100", "--ttft-ms", "0", "--itl-ms", "0"],
    )
    try:

        def timed(model):
            t = time.monotonic()
            r = httpx.post(f"{p.url}/v1/completions", json={"model": model, "prompt": "x", "max_tokens": 1})
            assert r.status_code == 200
            return time.monotonic() - t

        assert timed("a") >= 0.1
        assert timed("b") >= 0.1
        assert timed("a") < 0.08
        assert timed("d") >= 0.1
        assert timed("a") < 0.08
        assert timed("b") >= 0.1  # it was evicted
        assert metric(p.url, "lora_router_sim:lora_loads_total") == 4
        assert metric(p.url, "lora_router_sim:lora_evictions_total") == 2
        assert timed("tiny-base") < 0.08  # the base model needs no slot
    finally:
        p.stop()


def test_deferred_waiting_when_slots_are_busy(adapter_dirs):
    import threading

    p = start_sim(
        {k: adapter_dirs[k] for k in ["a", "b", "d"]}, max_loras=2, extra=["--ttft-ms", "300", "--lora-load-ms", "0"]
    )
    try:
        threads = [
            threading.Thread(
                target=httpx.post,
                args=(f"{p.url}/v1/completions",),
                kwargs={"json": {"model": m, "prompt": "x", "max_tokens": 1}, "timeout": 10},
            )
            for m in ["a", "b", "d"]
        ]
        for t in threads:
            t.start()
            time.sleep(0.05)
        time.sleep(0.1)
        text = httpx.get(f"{p.url}/metrics").text
        assert 'vllm:num_requests_waiting_by_reason{engine="0",model_name="tiny-base",reason="deferred"} 1.0' in text
        assert 'vllm:num_requests_running{engine="0",model_name="tiny-base"} 2.0' in text
        info = [line for line in text.splitlines() if line.startswith("vllm:lora_requests_info{")]
        newest = max(info, key=lambda line: float(line.rsplit(" ", 1)[1]))
        assert 'max_lora="2"' in newest and 'running_lora_adapters="a,b"' in newest
        for t in threads:
            t.join()
        assert metric(p.url, "vllm:num_requests_waiting") == 0
    finally:
        p.stop()


def test_other_routes(vsim):
    assert httpx.get(f"{vsim.url}/health").status_code == 200
    assert httpx.get(f"{vsim.url}/health").content == b""
    assert httpx.get(f"{vsim.url}/version").json() == {"version": "0.32.0"}
    r = httpx.get(f"{vsim.url}/nope")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    assert httpx.get(f"{vsim.url}/v1/chat/completions").status_code == 405
    r = httpx.post(f"{vsim.url}/v1/chat/completions", json={"model": "a"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "body.messages"
    r = httpx.post(f"{vsim.url}/v1/chat/completions", content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "Bad Request"
