"""Failure isolation: a collector that raises, hangs or misbehaves fails alone, in time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.core import GaugeMetricFamily

from minicluster.exporter.collectors.base import Collector
from minicluster.exporter.scrape import ScrapeGuard
from tests.exporter.conftest import get, make_options, samples, value
from tests.exporter.fakes import linux_sources


class Fixed(Collector):
    """A collector whose name and behaviour the test chooses."""

    def __init__(self, name, source):
        self.name = name
        super().__init__(source)

    def collect(self):
        yield GaugeMetricFamily(f"test_{self.name}", "test value", value=self.source())


@pytest.fixture
def release():
    event = threading.Event()
    yield event
    event.set()  # let hung collectors finish so their threads end


def hang(event: threading.Event):
    def source():
        event.wait(60)
        return 1.0

    return source


def boom():
    raise RuntimeError("sensor unplugged")


def success(text: str, collector: str) -> float | None:
    return value(text, "node_scrape_collector_success", collector=collector)


def test_raising_collector_fails_alone(serve, tmp_path):
    collectors = [Fixed("good", lambda: 1.0), Fixed("bad", boom), Fixed("other", lambda: 2.0)]
    server = serve(make_options(tmp_path), collectors=collectors)
    response = get(server.url + "/metrics")
    assert response.status_code == 200
    text = response.text
    assert success(text, "bad") == 0
    assert success(text, "good") == success(text, "other") == 1
    assert value(text, "test_good") == 1.0 and value(text, "test_other") == 2.0
    assert value(text, "test_bad") is None
    assert value(text, "node_scrape_collector_duration_seconds", collector="bad") >= 0


def test_collector_yielding_garbage_fails_alone(serve, tmp_path):
    class Garbage(Collector):
        name = "garbage"

        def collect(self):
            yield "node_fake 1"

    collectors = [Garbage(lambda: None), Fixed("good", lambda: 1.0)]
    text = get(serve(make_options(tmp_path), collectors=collectors).url + "/metrics").text
    assert success(text, "garbage") == 0 and success(text, "good") == 1


def test_hung_collector_cannot_hold_the_scrape(serve, tmp_path, release):
    collectors = [
        Fixed("early", lambda: 1.0),
        Fixed("stuck", hang(release)),
        Fixed("late", lambda: 3.0),
    ]
    options = make_options(tmp_path, collector_timeout_seconds=0.5)
    server = serve(options, collectors=collectors)

    started = time.perf_counter()
    first = get(server.url + "/metrics")
    elapsed = time.perf_counter() - started
    assert first.status_code == 200
    assert 0.45 < elapsed < 1.0
    assert success(first.text, "stuck") == 0
    assert success(first.text, "early") == success(first.text, "late") == 1
    assert value(first.text, "test_late") == 3.0
    assert value(first.text, "node_scrape_collector_duration_seconds", collector="stuck") >= 0.45

    # Still hung: not started again, reported failed at once, the rest served quickly.
    started = time.perf_counter()
    second = get(server.url + "/metrics")
    assert time.perf_counter() - started < 0.3
    assert success(second.text, "stuck") == 0 and success(second.text, "late") == 1

    release.set()  # the read returns: the collector is used again
    time.sleep(0.1)
    third = get(server.url + "/metrics").text
    assert success(third, "stuck") == 1 and value(third, "test_stuck") == 1.0


def test_two_hung_collectors_do_not_starve_the_rest(tmp_path, release):
    collectors = [Fixed(f"stuck{i}", hang(release)) for i in range(2)]
    collectors += [Fixed(f"quick{i}", lambda: 1.0) for i in range(5)]
    guard = ScrapeGuard(collectors, timeout_seconds=0.5)
    started = time.perf_counter()
    families = guard.scrape()
    assert time.perf_counter() - started < 1.0
    results = {
        s.labels["collector"]: s.value
        for f in families
        for s in f.samples
        if f.name == "node_scrape_collector_success"
    }
    assert results == {"stuck0": 0, "stuck1": 0, **{f"quick{i}": 1 for i in range(5)}}


def test_prometheus_scrape_timeout_header_shortens_the_budget(tmp_path, release):
    guard = ScrapeGuard([Fixed("stuck", hang(release))], timeout_seconds=5.0)
    started = time.perf_counter()
    guard.scrape(budget_seconds=0.3)
    assert time.perf_counter() - started < 0.6


def test_concurrent_scrapes_share_one_collection():
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow():
        calls.append(1)
        started.set()
        release.wait(10)
        return float(len(calls))

    guard = ScrapeGuard([Fixed("slow", slow)], timeout_seconds=5.0)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(guard.scrape)
        assert started.wait(5)
        joined = [pool.submit(guard.scrape) for _ in range(2)]
        time.sleep(0.1)  # both are waiting on the first collection by now
        release.set()
        results = [first.result(5), *(f.result(5) for f in joined)]
    assert calls == [1]  # one collection answered all three
    assert all(result is results[0] for result in results)
    assert guard.scrape() is not results[0] and calls == [1, 1]  # later: collected afresh


def test_a_scrape_with_a_shorter_budget_does_not_wait_on_a_longer_one(release):
    guard = ScrapeGuard([Fixed("stuck", hang(release))], timeout_seconds=5.0)
    with ThreadPoolExecutor(1) as pool:
        long = pool.submit(guard.scrape)  # collects until its 5 s budget
        time.sleep(0.1)
        began = time.perf_counter()
        short = guard.scrape(budget_seconds=0.3)  # would end after its own budget if it joined
        assert time.perf_counter() - began < 1.0
        release.set()
        long.result(10)
    assert value_of(short, "node_scrape_collector_success", "stuck") == 0


def value_of(families, name: str, collector: str) -> float | None:
    for family in families:
        for sample in family.samples:
            if sample.name == name and sample.labels.get("collector") == collector:
                return sample.value
    return None


def test_scrape_cap_answers_503_beyond_it(serve, tmp_path):
    gate = threading.Event()

    def slow():
        gate.wait(5)
        return 1.0

    options = make_options(tmp_path, max_concurrent_scrapes=1)
    server = serve(options, collectors=[Fixed("slow", slow)])
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(get, server.url + "/metrics")
        time.sleep(0.3)  # the first scrape now holds the only slot
        second = get(server.url + "/metrics")
        gate.set()
        assert first.result().status_code == 200
    assert second.status_code == 503
    assert "Too many concurrent scrapes" in second.text
    assert get(server.url + "/metrics").status_code == 200  # the slot is free again
    # Other endpoints are not capped.
    assert get(server.url + "/-/healthy").status_code == 200


def test_every_real_collector_succeeds_on_this_machine(tmp_path):
    from minicluster.exporter.registry import build_collectors

    collectors = build_collectors(make_options(tmp_path))
    families = ScrapeGuard(collectors, timeout_seconds=5).scrape()
    results = {
        s.labels["collector"]: s.value
        for f in families
        for s in f.samples
        if f.name == "node_scrape_collector_success"
    }
    assert results == {c.name: 1.0 for c in collectors}
    assert set(results) == {
        *("arp", "boottime", "conntrack", "cpu", "diskstats", "entropy", "filefd"),
        *("filesystem", "loadavg", "meminfo", "netclass", "netdev", "netstat", "os"),
        *("peers", "pressure", "process", "schedstat", "selinux", "sockstat", "softnet"),
        *("stat", "textfile"),
        *("time", "timex", "udp_queues", "uname", "vmstat"),
    }


def test_fixture_sources_all_succeed(serve, tmp_path):
    server = serve(make_options(tmp_path), sources=linux_sources(), platform="linux")
    parsed = samples(get(server.url + "/metrics").text)
    failed = [
        labels
        for (name, labels), v in parsed.items()
        if name == "node_scrape_collector_success" and v != 1
    ]
    assert failed == []


def test_guard_is_a_prometheus_client_collector():
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(ScrapeGuard([Fixed("good", lambda: 4.0), Fixed("bad", boom)], 1.0))
    assert registry.get_sample_value("test_good") == 4.0
    assert registry.get_sample_value("node_scrape_collector_success", {"collector": "bad"}) == 0
