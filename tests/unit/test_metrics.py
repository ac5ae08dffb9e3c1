"""Metrics as a Prometheus scrape sees them, and the labels they refuse."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from enum import Enum

import pytest

from bot.metrics import (
    BotGaugeSources,
    BotMetrics,
    LabelError,
    LabelValues,
    LoopLag,
    MetricDefinitionError,
    Metrics,
    PhotoTiming,
    sample_loop_lag,
)


class Reason(Enum):
    TOO_LARGE = "too_large"


async def test_small_registry_renders_exactly_in_text_format() -> None:
    """A scrape of a small registry is exactly the HELP, TYPE and sample lines Prometheus expects."""
    metrics = Metrics()
    replies = metrics.counter("replies_sent_total", "Messages sent.")
    rejected = metrics.counter("photos_rejected_total", "Photos refused, by reason.", labels=("reason",))
    pending = metrics.gauge("pending_uploads", "Uploads in flight.")
    seconds = metrics.histogram("photo_seconds", "Time per photo.", buckets=(0.1, 1.0))
    replies.inc()
    replies.inc(2)
    rejected.inc(reason="too_large")
    rejected.inc(reason="corrupt")
    pending.set(3)
    for value in (0.05, 0.5, 7):
        seconds.observe(value)

    assert await metrics.render() == (
        "# HELP replies_sent_total Messages sent.\n"
        "# TYPE replies_sent_total counter\n"
        "replies_sent_total 3.0\n"
        "# HELP photos_rejected_total Photos refused, by reason.\n"
        "# TYPE photos_rejected_total counter\n"
        'photos_rejected_total{reason="corrupt"} 1.0\n'
        'photos_rejected_total{reason="too_large"} 1.0\n'
        "# HELP pending_uploads Uploads in flight.\n"
        "# TYPE pending_uploads gauge\n"
        "pending_uploads 3.0\n"
        "# HELP photo_seconds Time per photo.\n"
        "# TYPE photo_seconds histogram\n"
        'photo_seconds_bucket{le="0.1"} 1.0\n'
        'photo_seconds_bucket{le="1.0"} 2.0\n'
        'photo_seconds_bucket{le="+Inf"} 3.0\n'
        "photo_seconds_count 3.0\n"
        "photo_seconds_sum 7.55\n"
    )


async def test_unused_metrics_still_appear_with_zero() -> None:
    """An unlabelled metric is scraped as 0 before anything happens, so rates start from a known value."""
    metrics = Metrics(prefix="photobot_")
    metrics.counter("submissions_total", "Submissions.")
    metrics.histogram("wait_seconds", "Waits.", buckets=(1.0,))

    assert await metrics.render() == (
        "# HELP photobot_submissions_total Submissions.\n"
        "# TYPE photobot_submissions_total counter\n"
        "photobot_submissions_total 0.0\n"
        "# HELP photobot_wait_seconds Waits.\n"
        "# TYPE photobot_wait_seconds histogram\n"
        'photobot_wait_seconds_bucket{le="1.0"} 0.0\n'
        'photobot_wait_seconds_bucket{le="+Inf"} 0.0\n'
        "photobot_wait_seconds_count 0.0\n"
        "photobot_wait_seconds_sum 0.0\n"
    )


async def test_help_text_escapes_backslash_and_newline() -> None:
    """A backslash or a line break in help text cannot break the line structure of the scrape."""
    metrics = Metrics()
    metrics.gauge("odd", "Path C:\\bot\nsecond line")

    assert (await metrics.render()).splitlines()[0] == "# HELP odd Path C:\\\\bot\\nsecond line"


async def test_special_values_use_prometheus_spelling() -> None:
    """Infinities and NaN are scraped the way the Prometheus parser reads them."""
    metrics = Metrics()
    values = metrics.gauge("odd_values", "Odd.", labels=("kind",))
    for kind, value in (("up", float("inf")), ("down", float("-inf")), ("nan", float("nan"))):
        values.set(value, kind=kind)

    assert [line for line in (await metrics.render()).splitlines() if not line.startswith("#")] == [
        'odd_values{kind="down"} -Inf',
        'odd_values{kind="nan"} NaN',
        'odd_values{kind="up"} +Inf',
    ]


async def test_histogram_buckets_are_cumulative_and_bounds_inclusive() -> None:
    """Each bucket counts every observation at or below its bound, and +Inf equals the count."""
    metrics = Metrics()
    lag = metrics.histogram("lag_seconds", "Lag.", buckets=(0.01, 0.1, 1.0), labels=("loop",))
    for value in (0.001, 0.01, 0.05, 0.1, 0.5, 3.0, 4.0):
        lag.observe(value, loop="main")

    lines = (await metrics.render()).splitlines()
    assert lines[2:] == [
        'lag_seconds_bucket{le="0.01",loop="main"} 2.0',
        'lag_seconds_bucket{le="0.1",loop="main"} 4.0',
        'lag_seconds_bucket{le="1.0",loop="main"} 5.0',
        'lag_seconds_bucket{le="+Inf",loop="main"} 7.0',
        'lag_seconds_count{loop="main"} 7.0',
        'lag_seconds_sum{loop="main"} 7.661',
    ]
    assert lag.count(loop="main") == 7


async def test_histogram_timer_observes_the_block_duration() -> None:
    """Timing a block records one observation of about its duration."""
    metrics = Metrics()
    seconds = metrics.histogram("step_seconds", "Step.", buckets=(0.001, 10.0))
    with seconds.time():
        await asyncio.sleep(0.002)

    assert seconds.count() == 1
    assert 'step_seconds_bucket{le="0.001"} 0.0' in (await metrics.render()).splitlines()


@pytest.mark.parametrize(
    "labels",
    [
        {},  # missing
        {"reason": "too_large", "extra": "x"},  # undeclared
        {"cause": "too_large"},  # misspelt
    ],
)
def test_labels_must_be_exactly_those_declared(labels: dict[str, str]) -> None:
    """Recording with a missing, extra or misspelt label name is refused."""
    counter = Metrics().counter("photos_rejected_total", "Refused.", labels=("reason",))

    with pytest.raises(LabelError):
        counter.inc(**labels)


@pytest.mark.parametrize(
    "value",
    [
        "a" * 65,  # too long
        "",  # empty
        "Too_Large",  # upper case
        "too large",  # space
        'x"y',  # quote
        "@patient:example.org",  # a Matrix id
        "9434765919",  # an NHS number
        "943-476-5919",  # an NHS number, dashed
        "07700900123",  # a phone number
        "2024-01-31",  # a date
    ],
)
def test_unsafe_label_values_are_refused(value: str) -> None:
    """A label value that is long, outside [a-z0-9_.-], or carries a run of digits is refused."""
    counter = Metrics().counter("photos_rejected_total", "Refused.", labels=("reason",))

    with pytest.raises(LabelError):
        counter.inc(reason=value)
    assert counter.value(reason="too_large") == 0.0


def test_fixed_names_and_enums_are_accepted_as_label_values() -> None:
    """A 64-character name, a dotted version and an enum member are all valid label values."""
    counter = Metrics().counter("photos_rejected_total", "Refused.", labels=("reason",))
    counter.inc(reason="a" * 64)
    counter.inc(reason="v1.2-rc_3")
    counter.inc(reason=Reason.TOO_LARGE)

    assert counter.value(reason="too_large") == 1.0
    assert counter.value(reason="a" * 64) == 1.0


def test_label_combinations_are_capped() -> None:
    """A metric refuses a new label combination beyond its cap, but keeps counting the known ones."""
    counter = Metrics(max_series=2).counter("commands_total", "Commands.", labels=("command",))
    counter.inc(command="keep")
    counter.inc(command="view")

    with pytest.raises(LabelError):
        counter.inc(command="delete")
    counter.inc(command="keep")
    assert counter.value(command="keep") == 2.0


def test_counters_only_go_up() -> None:
    """A counter refuses a negative or NaN increment."""
    counter = Metrics().counter("replies_sent_total", "Sent.")

    with pytest.raises(ValueError, match="only goes up"):
        counter.inc(-1)
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc(float("nan"))
    assert counter.value() == 0.0


def test_gauges_go_up_and_down() -> None:
    """A gauge can be set, raised and lowered."""
    gauge = Metrics().gauge("in_flight", "In flight.", labels=("kind",))
    gauge.set(5, kind="heic")
    gauge.inc(kind="heic")
    gauge.dec(4, kind="heic")

    assert gauge.value(kind="heic") == 2.0


@pytest.mark.parametrize(
    ("declare", "problem"),
    [
        (lambda m: m.counter("replies_sent", "No suffix."), "_total"),
        (lambda m: m.gauge("bad-name", "Dash."), "invalid metric name"),
        (lambda m: m.gauge("g", "Bad label.", labels=("__reserved",)), "label name"),
        (lambda m: m.gauge("g", "Twice.", labels=("a", "a")), "duplicate"),
        (lambda m: m.histogram("h", "le is ours.", buckets=(1.0,), labels=("le",)), "label name"),
        (lambda m: m.histogram("h", "Unsorted.", buckets=(1.0, 0.5)), "increasing"),
        (lambda m: m.histogram("h", "Empty.", buckets=()), "not empty"),
        (lambda m: m.histogram("h", "Inf is implicit.", buckets=(1.0, float("inf"))), "finite"),
    ],
)
def test_badly_declared_metrics_are_refused(declare: Callable[[Metrics], object], problem: str) -> None:
    """A metric with a bad name, label names or buckets is refused when declared."""
    metrics = Metrics()

    with pytest.raises(MetricDefinitionError, match=problem):
        declare(metrics)


def test_names_that_would_clash_in_the_scrape_are_refused() -> None:
    """A second metric whose sample names collide with an existing one is refused."""
    metrics = Metrics()
    metrics.histogram("photo_seconds", "Photos.", buckets=(1.0,))

    with pytest.raises(MetricDefinitionError, match="clashes"):
        metrics.gauge("photo_seconds_count", "Clash.")
    with pytest.raises(MetricDefinitionError, match="clashes"):
        metrics.gauge("photo_seconds", "Clash.")


async def test_computed_gauges_are_read_at_scrape_time() -> None:
    """A computed gauge shows what its source returns at the moment of the scrape."""
    counts: dict[LabelValues, float] = {("awaiting_photos",): 2}

    async def by_state() -> Mapping[LabelValues, float]:
        return counts

    metrics = Metrics()
    metrics.gauge_callback("conversations", "Conversations.", by_state, labels=("state",))
    first = await metrics.render()
    counts[("submitted",)] = 5
    second = await metrics.render()

    assert 'conversations{state="awaiting_photos"} 2.0' in first
    assert 'conversations{state="submitted"}' not in first
    assert 'conversations{state="submitted"} 5.0' in second


async def test_a_failing_slow_or_unsafe_source_is_left_out_and_counted() -> None:
    """A computed gauge whose source fails, hangs or returns unsafe labels is left out; the rest still render."""

    async def broken() -> Mapping[LabelValues, float]:
        raise OSError("database is locked")

    async def hanging() -> Mapping[LabelValues, float]:
        await asyncio.sleep(10)
        return {}

    async def leaky() -> Mapping[LabelValues, float]:
        return {("9434765919",): 1}

    metrics = Metrics(callback_timeout=0.05)
    metrics.gauge("healthy", "Still here.").set(1)
    metrics.gauge_callback("broken", "Fails.", broken)
    metrics.gauge_callback("hanging", "Hangs.", hanging)
    metrics.gauge_callback("leaky", "Leaks.", leaky, labels=("who",))

    samples = [line for line in (await metrics.render()).splitlines() if not line.startswith("#")]

    assert samples == [
        "healthy 1.0",
        'metrics_callback_failures_total{gauge="broken"} 1.0',
        'metrics_callback_failures_total{gauge="hanging"} 1.0',
        'metrics_callback_failures_total{gauge="leaky"} 1.0',
    ]


async def test_bot_metrics_expose_the_bot_metric_set() -> None:
    """The bot's metric set renders every documented metric, with the computed gauges from its sources."""

    async def by_state() -> Mapping[str, float]:
        return {"awaiting_photos": 3}

    async def by_status() -> Mapping[str, float]:
        return {"new": 2, "claimed": 1}

    async def purge() -> float:
        return 4

    async def outbox() -> float:
        return 0

    metrics = Metrics(prefix="photobot_")
    bot = BotMetrics.create(metrics, BotGaugeSources(by_state, by_status, purge, outbox))
    bot.photos_rejected_total.inc(reason="too_large")
    bot.commands_total.inc(command="keep", outcome="ok")
    bot.photo_processing_seconds.observe(0.02)
    scraped = (await metrics.render()).splitlines()

    for line in (
        "photobot_photos_received_total 0.0",
        "photobot_photos_accepted_total 0.0",
        'photobot_photos_rejected_total{reason="too_large"} 1.0',
        "photobot_decrypt_failures_total 0.0",
        "photobot_submissions_total 0.0",
        "photobot_replies_sent_total 0.0",
        'photobot_commands_total{command="keep",outcome="ok"} 1.0',
        'photobot_photo_processing_seconds_bucket{le="0.005"} 0.0',
        'photobot_photo_processing_seconds_bucket{le="0.025"} 1.0',
        'photobot_photo_processing_seconds_bucket{le="5.0"} 1.0',
        "photobot_event_handling_seconds_count 0.0",
        'photobot_event_loop_lag_seconds_bucket{le="0.001"} 0.0',
        'photobot_event_loop_lag_seconds_bucket{le="1.0"} 0.0',
        'photobot_conversations{state="awaiting_photos"} 3.0',
        'photobot_queue_length{status="claimed"} 1.0',
        'photobot_queue_length{status="new"} 2.0',
        "photobot_purge_backlog 4.0",
        "photobot_outbox_backlog 0.0",
    ):
        assert line in scraped, line


def test_loop_lag_percentiles_use_nearest_rank() -> None:
    """p50 and p99 of the kept samples are the nearest-rank values."""
    lag = LoopLag()
    for millis in range(1, 101):
        lag.record(millis / 1000)

    assert lag.percentiles() == (0.05, 0.099)
    assert lag.percentile(1.0) == 0.1


def test_loop_lag_keeps_only_the_most_recent_samples() -> None:
    """Old samples fall out of the ring, so one bad minute does not colour the percentiles forever."""
    lag = LoopLag(capacity=10)
    for _ in range(50):
        lag.record(1.0)
    for _ in range(10):
        lag.record(0.001)

    assert lag.count == 10
    assert lag.percentiles() == (0.001, 0.001)


def test_loop_lag_without_samples_reports_zero() -> None:
    """Before the first sample, the percentiles are zero rather than an error."""
    assert LoopLag().percentiles() == (0.0, 0.0)


async def test_loop_lag_sampler_sees_a_blocked_loop_and_stops_on_request() -> None:
    """Blocking the event loop shows up as lag, and setting stop ends the sampler promptly."""
    metrics = Metrics()
    histogram = metrics.histogram("event_loop_lag_seconds", "Lag.", buckets=(0.001, 0.01, 1.0))
    recent = LoopLag()
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_loop_lag(histogram, stop=stop, interval=0.01, recent=recent))
    await asyncio.sleep(0.05)
    time.sleep(0.1)  # noqa: ASYNC251 - the blocking call this sampler exists to reveal
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(sampler, timeout=1.0)

    assert recent.count == histogram.count() >= 3
    assert recent.percentile(1.0) >= 0.08


def _bot_metrics() -> tuple[Metrics, BotMetrics]:
    async def none() -> Mapping[str, float]:
        return {}

    async def zero() -> float:
        return 0

    metrics = Metrics(prefix="photobot_")
    return metrics, BotMetrics.create(metrics, BotGaugeSources(none, none, zero, zero))


async def test_benchmark_reads_pipeline_cpu_and_forward_time_under_fixed_names() -> None:
    """The scrape carries photobot_photo_pipeline_cpu_seconds and photobot_photo_forward_seconds histograms."""
    metrics, bot = _bot_metrics()
    bot.photo_pipeline_cpu_seconds.observe(0.012)
    bot.photo_forward_seconds.observe(0.045)
    scraped = (await metrics.render()).splitlines()

    assert "photobot_photo_pipeline_cpu_seconds_sum 0.012" in scraped
    assert "photobot_photo_pipeline_cpu_seconds_count 1.0" in scraped
    assert 'photobot_photo_forward_seconds_bucket{le="0.05"} 1.0' in scraped
    assert 'photobot_photo_forward_seconds_bucket{le="0.04"} 0.0' in scraped
    assert "photobot_photo_forward_seconds_count 1.0" in scraped


def _spin(seconds: float) -> int:
    """Keep this thread busy for `seconds` of CPU time."""
    end = time.thread_time() + seconds
    turns = 0
    while time.thread_time() < end:
        turns += 1
    return turns


async def test_photo_timing_counts_cpu_of_worker_steps_not_waiting() -> None:
    """A photo's CPU figure adds what its worker-thread steps computed, not time they spent waiting."""
    _, bot = _bot_metrics()
    timing = PhotoTiming(bot)

    turns = await asyncio.to_thread(timing.cpu(_spin), 0.05)
    await asyncio.to_thread(timing.cpu(time.sleep), 0.2)
    timing.done()

    assert turns > 0, "the wrapped step's result is returned"
    assert bot.photo_pipeline_cpu_seconds.count() == 1
    assert bot.photo_processing_seconds.count() == 1
    cpu, wall = bot.photo_pipeline_cpu_seconds.total(), bot.photo_processing_seconds.total()
    assert 0.05 <= cpu < 0.15, "the sleep added no CPU time"
    assert wall >= 0.25, "the wall time includes the wait"


async def test_photo_timing_keeps_the_cpu_of_a_step_that_raised() -> None:
    """A step that fails still adds the CPU time it spent, and the error reaches the caller."""
    _, bot = _bot_metrics()
    timing = PhotoTiming(bot)

    def spin_then_fail() -> None:
        _spin(0.02)
        raise ValueError("corrupt")

    with pytest.raises(ValueError, match="corrupt"):
        await asyncio.to_thread(timing.cpu(spin_then_fail))

    assert timing.cpu_seconds >= 0.02
