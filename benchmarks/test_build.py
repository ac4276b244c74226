"""Phase: data preparation and model build (config -> instance -> sparse model)."""

from conftest import sized
from sizes import config

from stockpile.model.families import build_model
from stockpile.model.instance import build_instance


@sized()
def test_build(benchmark, size):
    cfg = config(size)
    lm = benchmark(lambda: build_model(build_instance(cfg)))
    benchmark.extra_info.update(lm.sizes)
