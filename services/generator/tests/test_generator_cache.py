"""The response cache: normalised keys, context/personality/params in the key, TTL, LRU size, hit rate."""

from __future__ import annotations

import pytest

from parley.generator.domain.cache import ResponseCache, context_fingerprint, normalise_message


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_normalisation_ignores_case_spacing_and_edge_punctuation():
    assert normalise_message("  Where is   MY order?? ") == normalise_message("where is my order")
    assert normalise_message("where is my order") != normalise_message("where is your order")


def test_a_repeated_question_hits_and_the_hit_rate_is_counted():
    cache = ResponseCache(max_size=10, ttl_s=60)
    context = context_fingerprint("order_status", {"order_id": "12345"})
    key = cache.key("Where is my order?", context, "friendly", {"model": "smollm2"})
    assert cache.get(key) is None
    cache.put(key, "It has shipped.")
    assert (
        cache.get(cache.key("where is my order", context, "friendly", {"model": "smollm2"}))
        == "It has shipped."
    )
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.size) == (1, 1, 1)
    assert cache.hit_rate == pytest.approx(0.5)


@pytest.mark.parametrize(
    "changed",
    [
        {"context_hash": context_fingerprint("order_status", {"order_id": "99999"})},
        {"context_hash": context_fingerprint("order_status", {"order_id": "12345"}, [("user", "hi")])},
        {"personality": "concise"},
        {"params": {"model": "other"}},
    ],
)
def test_context_personality_and_params_are_part_of_the_key(changed):
    base = {
        "context_hash": context_fingerprint("order_status", {"order_id": "12345"}),
        "personality": "friendly",
        "params": {"model": "smollm2"},
    }
    other = {**base, **changed}
    assert ResponseCache.key("hi", **base) != ResponseCache.key("hi", **other)


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = ResponseCache(max_size=10, ttl_s=30, clock=clock)
    cache.put("k", "v")
    clock.now = 29
    assert cache.get("k") == "v"
    clock.now = 31
    assert cache.get("k") is None
    assert cache.stats.size == 0


def test_the_least_recently_used_entry_goes_when_full():
    cache = ResponseCache(max_size=2, ttl_s=60)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"  # a is now more recent than b
    cache.put("c", "3")
    assert cache.get("b") is None and cache.get("a") == "1" and cache.get("c") == "3"


def test_empty_replies_are_not_cached():
    cache = ResponseCache()
    cache.put("k", "  ")
    assert cache.get("k") is None


def test_the_cache_hit_rate_is_exported_as_metrics():
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: PLC0415

    from parley.generator.adapters.llm_factory import register_cache_metrics  # noqa: PLC0415

    reader = InMemoryMetricReader()
    cache = ResponseCache(max_size=8, ttl_s=60)
    register_cache_metrics(cache, MeterProvider(metric_readers=[reader]).get_meter("test"))
    key = ResponseCache.key("where is my order?")
    assert cache.get(key) is None
    cache.put(key, "On its way.")
    assert cache.get(key) == "On its way."
    assert cache.get(ResponseCache.key("Where is my order")) == "On its way."  # normalised: a hit

    def values() -> dict[str, float]:
        data = reader.get_metrics_data()
        return {
            metric.name: metric.data.data_points[0].value
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    seen = values()
    assert seen["parley.generator.cache.hits"] == 2 and seen["parley.generator.cache.misses"] == 1
    assert seen["parley.generator.cache.hit_rate"] == pytest.approx(2 / 3)
    assert seen["parley.generator.cache.size"] == 1
