"""Every error the router answers itself, in OpenAI's error shape with the right status,
and upstream errors relayed with their status and body."""

import socket

import httpx
import pytest
from support import base_config, chat, start_router, start_sim, wait_until, write_config


def assert_error(r: httpx.Response, status: int, param=None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == status
    assert isinstance(err["message"], str) and err["message"]
    if param is not None:
        assert err["param"] == param
    return err


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_malformed_json(router):
    r = httpx.post(
        f"{router.url}/v1/chat/completions",
        content=b'{"model": "MoM", "messages": [',
        headers={"content-type": "application/json"},
    )
    err = assert_error(r, 400)
    assert "JSON" in err["message"]


@pytest.mark.parametrize("body", [{"model": "MoM"}, {"model": "MoM", "messages": []}, {"messages": "hi"}])
def test_missing_messages(router, body):
    assert_error(httpx.post(f"{router.url}/v1/chat/completions", json=body), 400, "messages")


def test_missing_prompt(router):
    assert_error(httpx.post(f"{router.url}/v1/completions", json={"model": "MoM"}), 400, "prompt")


@pytest.mark.parametrize("model", ["nope", "tiny-base:nope", "other@legal-lora"])
def test_unknown_explicit_model(router, model):
    err = assert_error(httpx.post(f"{router.url}/v1/chat/completions", json=chat(model)), 404, "model")
    assert err["type"] == "NotFoundError"
    assert err["message"] == f"The model `{model}` does not exist."


def test_body_over_limit(sim, tmp_path):
    cfg = base_config([("v", sim.port)], server={"max_body_bytes": 2048})
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        r = httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="x" * 5000))
        assert_error(r, 413)
        # Without a content-length (chunked upload) the limit holds too.
        r = httpx.post(f"{router.url}/v1/chat/completions", content=iter([b'{"messages": "', b"x" * 5000, b'"}']))
        assert_error(r, 413)
        assert httpx.post(f"{router.url}/v1/chat/completions", json=chat(text="short")).status_code == 200
    finally:
        router.stop()


class DroppingUpstream:
    """Answers GET /health, but closes the connection on any POST without answering: the
    router reaches it, then loses it before a response."""

    def __init__(self):
        import socketserver
        import threading

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline()
                if line.startswith(b"GET /health"):
                    self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                # A POST: hang up without answering.

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_upstream_dropping_the_connection_is_502():
    import tempfile
    from pathlib import Path

    up = DroppingUpstream()
    with tempfile.TemporaryDirectory() as tmp:
        router = start_router(write_config(Path(tmp) / "c.yaml", base_config([("v", up.port)])))
        try:
            err = assert_error(httpx.post(f"{router.url}/v1/chat/completions", json=chat()), 502)
            assert "vllm-0" in err["message"]
        finally:
            router.stop()
            up.close()


def test_unreachable_endpoint_is_ejected_and_gives_503(tmp_path):
    cfg = base_config([("dead", free_port())], server={"health_check": {"interval_s": 60}})
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        # A connect failure (on traffic or on the first probe) ejects the endpoint; with nothing
        # healthy left the answer is 503, and it says which model has no endpoint.
        first = httpx.post(f"{router.url}/v1/chat/completions", json=chat())
        assert first.status_code in (502, 503)
        err = assert_error(httpx.post(f"{router.url}/v1/chat/completions", json=chat()), 503)
        assert "tiny-base" in err["message"]
    finally:
        router.stop()


def test_no_healthy_backend_after_health_checks_fail(adapters, tmp_path):
    sim = start_sim(adapters)
    cfg = base_config([("v", sim.port)])
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        assert httpx.post(f"{router.url}/v1/chat/completions", json=chat()).status_code == 200
        sim.stop()
        wait_until(lambda: httpx.get(f"{router.url}/health").json()["endpoints"]["vllm-0"] == "unhealthy")
        assert_error(httpx.post(f"{router.url}/v1/chat/completions", json=chat()), 503)
    finally:
        router.stop()


def test_upstream_timeout_is_504(adapters, tmp_path):
    sim = start_sim(adapters, extra=["--ttft-ms", "3000"])
    cfg = base_config([("v", sim.port)], server={"timeouts": {"request_s": 0.3}})
    router = start_router(write_config(tmp_path / "c.yaml", cfg))
    try:
        err = assert_error(httpx.post(f"{router.url}/v1/chat/completions", json=chat(), timeout=10), 504)
        assert "vllm-0" in err["message"]
    finally:
        router.stop()
        sim.stop()


def test_upstream_errors_are_relayed(router, sim):
    # 400 from vLLM: max_tokens beyond max_model_len.
    r = httpx.post(f"{router.url}/v1/chat/completions", json=chat("tiny-base", max_tokens=100000))
    direct = httpx.post(f"{sim.url}/v1/chat/completions", json=chat("tiny-base", max_tokens=100000))
    assert r.status_code == direct.status_code == 400
    assert r.json() == direct.json()
    assert r.headers["x-lora-router-backend"] == "vllm-0"


def test_an_adapter_the_replica_lost(router, sim):
    # The router knows legal-lora (declared without a path, so it cannot load it). Unload it
    # from the replica: until the router's next sync of /v1/models it still sends it there and
    # relays vLLM's own 404; once synced it knows no replica serves it and says so with 503.
    assert httpx.post(f"{sim.url}/v1/unload_lora_adapter", json={"lora_name": "legal-lora"}).status_code == 200
    try:
        r = httpx.post(f"{router.url}/v1/chat/completions", json=chat("legal-lora"))
        if r.status_code == 404:
            assert r.json()["error"]["message"] == "The model `legal-lora` does not exist. Valid aliases: tiny-base."
        else:
            assert r.status_code == 503
        wait_until(lambda: httpx.post(f"{router.url}/v1/chat/completions", json=chat("legal-lora")).status_code == 503)
        err = assert_error(httpx.post(f"{router.url}/v1/chat/completions", json=chat("legal-lora")), 503)
        assert err["message"] == "No healthy endpoint of `tiny-base` serves or can load the adapter `legal-lora`."
    finally:
        reqs = httpx.get(f"{sim.url}/v1/models").json()["data"]
        assert "legal-lora" not in [m["id"] for m in reqs]
        path = next(a for a in sim.args if a.startswith("legal-lora=")).split("=", 1)[1]
        httpx.post(f"{sim.url}/v1/load_lora_adapter", json={"lora_name": "legal-lora", "lora_path": path})
        wait_until(lambda: httpx.post(f"{router.url}/v1/chat/completions", json=chat("legal-lora")).status_code == 200)


def test_unknown_route_and_method(router):
    assert_error(httpx.get(f"{router.url}/v1/nothing"), 404)
    assert_error(httpx.get(f"{router.url}/v1/chat/completions"), 405)
    assert_error(httpx.post(f"{router.url}/v1/models"), 405)


def test_non_object_and_bad_types(router):
    assert_error(httpx.post(f"{router.url}/v1/chat/completions", json=[1, 2]), 400)
    assert_error(httpx.post(f"{router.url}/v1/chat/completions", json=chat(model=3)), 400, "model")
    assert_error(httpx.post(f"{router.url}/v1/chat/completions", json=chat(stream="yes")), 400, "stream")
    assert_error(httpx.post(f"{router.url}/v1/classify", json={"text": 5}), 400, "text")
