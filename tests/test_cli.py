"""The command line: help, and the README's first command (the demo) end to end."""

import subprocess

from support import lora_router


def test_help_lists_commands():
    r = subprocess.run(["lora-router", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for cmd in ["serve", "check", "sim", "demo"]:
        assert cmd in r.stdout


def test_demo_routes_its_examples():
    r = subprocess.run(lora_router("demo", "--once", "--port", "0"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "technical-lora" in out and "medical-lora" in out and "legal-lora" in out and "math-lora" in out
    assert "(base)" in out
    assert "curl" in out
