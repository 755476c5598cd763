import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support import base_config, make_adapters, start_router, start_sim, write_config


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    return make_adapters(tmp_path_factory.mktemp("adapters"), ["technical-lora", "medical-lora", "legal-lora"])


@pytest.fixture(scope="module")
def sim(adapters):
    p = start_sim(adapters)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def router(sim, tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("cfg") / "config.yaml", base_config([("vllm-0", sim.port)]))
    p = start_router(path)
    yield p
    p.stop()
