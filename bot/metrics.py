"""Counters, gauges and histograms for operators, kept and rendered by `prometheus-client`.

There is no global registry: one `Metrics` (a private `CollectorRegistry`) is created at start-up and
passed to whoever records, and `BotMetrics` names the bot's own metric set as attributes, so a call site
cannot misspell a metric. Metrics are thread-safe (a photo may be timed inside the CPU pool).

What this module adds to the library is one rule, as a thin wrapper around each metric: a label value must
come from a small fixed set (a reason, a state, a command name). It must match ``[a-z0-9_.-]{1,64}`` and
may not hold a run of four or more digits, so an NHS number, a phone number, a date or a Matrix id can never
become a label by mistake; and each metric caps how many label combinations it keeps, so a bug cannot grow
the scrape without bound.

Gauges that are cheaper to compute when scraped than to keep up to date (rows in SQLite) are async
callbacks, run at scrape time with a timeout; a failing or slow callback leaves its samples out and counts a
failure, never breaks the scrape.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from typing import ParamSpec, TypeVar

import prometheus_client
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MAX_LABEL_VALUE_LENGTH = 64
DEFAULT_MAX_SERIES = 200

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_LABEL_VALUE = re.compile(r"[a-z0-9_.-]+")
_DIGIT_RUN = re.compile(r"[0-9]{4}")

LabelValues = tuple[str, ...]
LabelValue = str | Enum
GaugeSource = Callable[[], Awaitable[Mapping[LabelValues, float]]]


class MetricDefinitionError(ValueError):
    """A metric was declared wrongly (bad name, duplicate, bad buckets): a programming error at start-up."""


class LabelError(ValueError):
    """A sample was recorded with missing, undeclared or unsafe labels."""


def check_label_value(value: str) -> str:
    """Return the value if it is safe as a label value; raise `LabelError` (without echoing it) if not."""
    if len(value) > MAX_LABEL_VALUE_LENGTH:
        raise LabelError(f"label value longer than {MAX_LABEL_VALUE_LENGTH} characters")
    if not _LABEL_VALUE.fullmatch(value):
        raise LabelError("label value must match [a-z0-9_.-]+")
    if _DIGIT_RUN.search(value):
        raise LabelError("label value holds a run of 4+ digits: it looks like data, not a fixed name")
    return value


def _plain(value: LabelValue) -> str:
    raw = value.value if isinstance(value, Enum) else value
    if not isinstance(raw, str):
        raise LabelError("label values are strings (or enums whose values are strings)")
    return raw


def _check_label_names(names: Sequence[str], *, reserved: frozenset[str] = frozenset()) -> tuple[str, ...]:
    for name in names:
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__") or name in reserved:
            raise MetricDefinitionError(f"invalid or reserved label name {name!r}")
    if len(set(names)) != len(names):
        raise MetricDefinitionError("duplicate label name")
    return tuple(names)


class _Guard:
    """The safety rule for one metric: exactly its declared labels, safe values, a cap on combinations."""

    def __init__(self, name: str, label_names: tuple[str, ...], max_series: int) -> None:
        self.name = name
        self.label_names = label_names
        self.max_series = max_series
        self._lock = threading.Lock()
        self._known: set[LabelValues] = set()

    def key(self, labels: Mapping[str, LabelValue], *, admit: bool = True) -> LabelValues:
        """The label values in declared order, checked; `admit` counts a new combination against the cap."""
        if len(labels) != len(self.label_names) or not all(name in labels for name in self.label_names):
            raise LabelError(f"{self.name} takes exactly the labels {self.label_names}, got {tuple(labels)}")
        key = tuple(_plain(labels[name]) for name in self.label_names)
        if key in self._known:
            return key
        for value in key:
            check_label_value(value)
        if not admit:
            return key
        with self._lock:
            if key not in self._known and len(self._known) >= self.max_series:
                raise LabelError(f"{self.name} already has {self.max_series} label combinations")
            self._known.add(key)
        return key


_Child = TypeVar("_Child", prometheus_client.Counter, prometheus_client.Gauge, prometheus_client.Histogram)


class _Wrapped:
    """A `prometheus-client` metric behind a `_Guard`; reads go through the registry's public API."""

    def __init__(self, guard: _Guard, registry: CollectorRegistry) -> None:
        self._guard = guard
        self._registry = registry

    @property
    def name(self) -> str:
        return self._guard.name

    def _sample(self, suffix: str, labels: Mapping[str, LabelValue]) -> float:
        key = self._guard.key(labels, admit=False)
        value = self._registry.get_sample_value(
            self.name + suffix, dict(zip(self._guard.label_names, key, strict=True))
        )
        return 0.0 if value is None else value

    def _child(self, metric: _Child, labels: Mapping[str, LabelValue]) -> _Child:
        key = self._guard.key(labels)
        return metric.labels(*key) if key else metric


class Counter(_Wrapped):
    """A count that only goes up: photos received, replies sent."""

    def __init__(self, metric: prometheus_client.Counter, guard: _Guard, registry: CollectorRegistry) -> None:
        super().__init__(guard, registry)
        self._metric = metric

    def inc(self, amount: float = 1.0, /, **labels: LabelValue) -> None:
        if not amount >= 0:  # also refuses NaN
            raise ValueError("a counter only goes up")
        self._child(self._metric, labels).inc(amount)

    def value(self, **labels: LabelValue) -> float:
        return self._sample("", labels)


class Gauge(_Wrapped):
    """A value that goes up and down, kept up to date by the code that changes it."""

    def __init__(self, metric: prometheus_client.Gauge, guard: _Guard, registry: CollectorRegistry) -> None:
        super().__init__(guard, registry)
        self._metric = metric

    def set(self, value: float, /, **labels: LabelValue) -> None:
        self._child(self._metric, labels).set(value)

    def inc(self, amount: float = 1.0, /, **labels: LabelValue) -> None:
        if not math.isfinite(amount):
            raise ValueError("a gauge moves by a finite amount")
        self._child(self._metric, labels).inc(amount)

    def dec(self, amount: float = 1.0, /, **labels: LabelValue) -> None:
        self.inc(-amount, **labels)

    def value(self, **labels: LabelValue) -> float:
        return self._sample("", labels)


class Histogram(_Wrapped):
    """How long things take (or how big they are), counted into fixed buckets."""

    def __init__(
        self, metric: prometheus_client.Histogram, guard: _Guard, registry: CollectorRegistry
    ) -> None:
        super().__init__(guard, registry)
        self._metric = metric

    def observe(self, value: float, /, **labels: LabelValue) -> None:
        if math.isnan(value):
            raise ValueError("cannot observe NaN")
        self._child(self._metric, labels).observe(value)

    def time(self, **labels: LabelValue) -> AbstractContextManager[object]:
        """``with histogram.time(): ...`` observes how many seconds the block took."""
        return self._child(self._metric, labels).time()

    def count(self, **labels: LabelValue) -> int:
        return int(self._sample("_count", labels))

    def total(self, **labels: LabelValue) -> float:
        """The sum of every value observed."""
        return self._sample("_sum", labels)


class ScrapeGauge:
    """A gauge computed when scraped, by an async source returning {label values: value}.

    It is a collector in the registry; `Metrics.render` sets its samples just before each scrape.
    """

    def __init__(self, name: str, help_text: str, guard: _Guard, source: GaugeSource) -> None:
        self.name = name
        self.help = help_text
        self.source = source
        self._guard = guard
        self._family = self._empty()

    def _empty(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.help, labels=self._guard.label_names)

    def describe(self) -> Iterable[Metric]:
        return [self._empty()]

    def collect(self) -> Iterable[Metric]:
        return [self._family]

    def update(self, values: Mapping[LabelValues, float] | None) -> None:
        """Take this scrape's values (checked like any label), or none if the source failed."""
        family = self._empty()
        if values is not None:
            if len(values) > self._guard.max_series:
                raise LabelError(f"{self.name}: source returned more than {self._guard.max_series} series")
            for key in sorted(values):
                if not isinstance(key, tuple) or len(key) != len(self._guard.label_names):
                    raise LabelError(
                        f"{self.name}: source keys must be tuples of {len(self._guard.label_names)} values"
                    )
                family.add_metric([check_label_value(_plain(value)) for value in key], float(values[key]))
        self._family = family


class _AsScraped:
    """The registry as scraped: each metric's series sorted by label values (a stable order for diffs and
    tests; a histogram's buckets stay in order), less the `_created` timestamps the client adds to counters
    and histograms (they double the scrape, and tell anyone reading it when each label was first used)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            kept = [sample for sample in family.samples if not sample.name.endswith("_created")]
            family.samples = sorted(
                kept, key=lambda sample: sorted((k, v) for k, v in sample.labels.items() if k != "le")
            )
            yield family


class Metrics:
    """The registry: declares metrics once, at start-up, and renders them all for a scrape."""

    def __init__(
        self, *, prefix: str = "", callback_timeout: float = 2.0, max_series: int = DEFAULT_MAX_SERIES
    ) -> None:
        self._prefix = prefix
        self._callback_timeout = callback_timeout
        self._max_series = max_series
        self._registry = CollectorRegistry()
        self._scraped: list[ScrapeGauge] = []
        self._render_lock = asyncio.Lock()
        self._callback_failures: Counter | None = None  # declared with the first computed gauge

    def _name(self, name: str) -> str:
        full = self._prefix + name
        if not _METRIC_NAME.fullmatch(full):
            raise MetricDefinitionError(f"invalid metric name {full!r}")
        return full

    def _register(self, make: Callable[[], T]) -> T:
        try:
            return make()
        except ValueError as error:  # the registry refuses a name whose samples would collide
            raise MetricDefinitionError(f"metric clashes with one already declared: {error}") from error

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        if not name.endswith("_total"):
            raise MetricDefinitionError(f"counter {name!r} must end in _total")
        full = self._name(name)
        guard = _Guard(full, _check_label_names(labels), self._max_series)
        metric = self._register(
            lambda: prometheus_client.Counter(full, help_text, guard.label_names, registry=self._registry)
        )
        return Counter(metric, guard, self._registry)

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        full = self._name(name)
        guard = _Guard(full, _check_label_names(labels), self._max_series)
        metric = self._register(
            lambda: prometheus_client.Gauge(full, help_text, guard.label_names, registry=self._registry)
        )
        return Gauge(metric, guard, self._registry)

    def histogram(
        self, name: str, help_text: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Histogram:
        full = self._name(name)
        guard = _Guard(full, _check_label_names(labels, reserved=frozenset({"le"})), self._max_series)
        bounds = tuple(float(bound) for bound in buckets)
        if not bounds or not all(math.isfinite(bound) for bound in bounds):
            raise MetricDefinitionError(f"{name}: buckets must be finite (+Inf is added) and not empty")
        if any(low >= high for low, high in itertools.pairwise(bounds)):
            raise MetricDefinitionError(f"{name}: buckets must be strictly increasing")
        metric = self._register(
            lambda: prometheus_client.Histogram(
                full, help_text, guard.label_names, buckets=bounds, registry=self._registry
            )
        )
        return Histogram(metric, guard, self._registry)

    def gauge_callback(
        self, name: str, help_text: str, source: GaugeSource, labels: Sequence[str] = ()
    ) -> ScrapeGauge:
        """A gauge whose samples `source` computes at each scrape: {(label values...): value}, () if none."""
        if self._callback_failures is None:
            self._callback_failures = self.counter(
                "metrics_callback_failures_total",
                "Scrapes in which a computed gauge's source failed or timed out (its samples were left out).",
                labels=("gauge",),
            )
        full = self._name(name)
        gauge = ScrapeGauge(
            full, help_text, _Guard(full, _check_label_names(labels), self._max_series), source
        )
        self._register(lambda: self._registry.register(gauge))
        self._scraped.append(gauge)
        return gauge

    async def render(self) -> str:
        """Every metric in declaration order, in the text exposition format 0.0.4."""
        async with self._render_lock:  # one scrape's computed values at a time
            await asyncio.gather(*(self._compute(gauge) for gauge in self._scraped))
            return prometheus_client.generate_latest(_AsScraped(self._registry)).decode("utf-8")

    async def _compute(self, gauge: ScrapeGauge) -> None:
        try:
            async with asyncio.timeout(self._callback_timeout):
                values = await gauge.source()
            gauge.update(values)
        except Exception as error:  # noqa: BLE001 - one failing source must not take the whole scrape down
            log.warning("computed gauge %s left out of this scrape: %s", gauge.name, type(error).__name__)
            gauge.update(None)
            if self._callback_failures is not None:
                self._callback_failures.inc(gauge=gauge.name)


class LoopLag:
    """The most recent event-loop lag samples (seconds), for percentiles a benchmark or health check reads."""

    def __init__(self, capacity: int = 1000) -> None:
        self._samples: deque[float] = deque(maxlen=capacity)

    def record(self, seconds: float) -> None:
        self._samples.append(seconds)

    @property
    def count(self) -> int:
        return len(self._samples)

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile (fraction 0..1) of the kept samples; 0.0 while there are none."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        ordered = sorted(self._samples)
        if not ordered:
            return 0.0
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1]

    def percentiles(self) -> tuple[float, float]:
        """(p50, p99) of the kept samples."""
        return self.percentile(0.50), self.percentile(0.99)


async def sample_loop_lag(
    histogram: Histogram,
    *,
    stop: asyncio.Event,
    interval: float = 0.1,
    recent: LoopLag | None = None,
) -> None:
    """Until `stop` is set, sleep `interval` and record how late the loop woke us: a blocked loop shows here."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        try:
            async with asyncio.timeout(interval):
                await stop.wait()
        except TimeoutError:
            lag = max(0.0, loop.time() - start - interval)
            histogram.observe(lag)
            if recent is not None:
                recent.record(lag)


PHOTO_PROCESSING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PHOTO_CPU_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)
PHOTO_FORWARD_BUCKETS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
EVENT_HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class BotGaugeSources:
    """Async queries (SQLite) the scrape-time gauges read; the wiring supplies them.

    Keyed by the label value (a `State` or status value); include zeros for known values if a dashboard
    should see a state empty rather than absent.
    """

    conversations_by_state: Callable[[], Awaitable[Mapping[str, float]]]
    queue_by_status: Callable[[], Awaitable[Mapping[str, float]]]
    purge_backlog: Callable[[], Awaitable[float]]
    outbox_backlog: Callable[[], Awaitable[float]]


def _by_one_label(source: Callable[[], Awaitable[Mapping[str, float]]]) -> GaugeSource:
    async def keyed() -> Mapping[LabelValues, float]:
        return {(label,): value for label, value in (await source()).items()}

    return keyed


def _unlabelled(source: Callable[[], Awaitable[float]]) -> GaugeSource:
    async def keyed() -> Mapping[LabelValues, float]:
        return {(): await source()}

    return keyed


@dataclass(frozen=True)
class BotMetrics:
    """The bot's metric set; call sites use these attributes, e.g. ``m.photos_rejected_total.inc(reason=r)``."""

    photos_received_total: Counter
    photos_accepted_total: Counter
    photos_rejected_total: Counter
    decrypt_failures_total: Counter
    submissions_total: Counter
    replies_sent_total: Counter
    commands_total: Counter
    photo_processing_seconds: Histogram
    photo_pipeline_cpu_seconds: Histogram
    photo_forward_seconds: Histogram
    event_handling_seconds: Histogram
    event_loop_lag_seconds: Histogram
    conversations: ScrapeGauge
    queue_length: ScrapeGauge
    purge_backlog: ScrapeGauge
    outbox_backlog: ScrapeGauge

    @classmethod
    def create(cls, metrics: Metrics, sources: BotGaugeSources) -> BotMetrics:
        m = metrics
        return cls(
            photos_received_total=m.counter(
                "photos_received_total", "Photos (images or files) received from patients."
            ),
            photos_accepted_total=m.counter(
                "photos_accepted_total", "Photos that passed checks and were stored."
            ),
            photos_rejected_total=m.counter(
                "photos_rejected_total", "Photos refused, by reason.", labels=("reason",)
            ),
            decrypt_failures_total=m.counter(
                "decrypt_failures_total", "Events or attachments the bot could not decrypt."
            ),
            submissions_total=m.counter("submissions_total", "Submissions completed by patients."),
            replies_sent_total=m.counter("replies_sent_total", "Messages the bot sent."),
            commands_total=m.counter(
                "commands_total",
                "Clinician and admin commands, by command (unknown for unrecognised) and outcome.",
                labels=("command", "outcome"),
            ),
            photo_processing_seconds=m.histogram(
                "photo_processing_seconds",
                "Time to decrypt, check, clean and encrypt one photo, waits for the CPU pool included.",
                PHOTO_PROCESSING_BUCKETS,
            ),
            photo_pipeline_cpu_seconds=m.histogram(
                "photo_pipeline_cpu_seconds",
                "CPU time worker threads spent decrypting, checking, cleaning and encrypting one photo.",
                PHOTO_CPU_BUCKETS,
            ),
            photo_forward_seconds=m.histogram(
                "photo_forward_seconds",
                "Time to read one photo from the vault, encrypt, upload and post it to a clinician room.",
                PHOTO_FORWARD_BUCKETS,
            ),
            event_handling_seconds=m.histogram(
                "event_handling_seconds", "Time to handle one Matrix event.", EVENT_HANDLING_BUCKETS
            ),
            event_loop_lag_seconds=m.histogram(
                "event_loop_lag_seconds", "How late the event loop woke a timer.", LOOP_LAG_BUCKETS
            ),
            conversations=m.gauge_callback(
                "conversations",
                "Patient conversations, by state.",
                _by_one_label(sources.conversations_by_state),
                labels=("state",),
            ),
            queue_length=m.gauge_callback(
                "queue_length",
                "Submissions in the clinician queue, by status.",
                _by_one_label(sources.queue_by_status),
                labels=("status",),
            ),
            purge_backlog=m.gauge_callback(
                "purge_backlog",
                "Media and messages waiting to be deleted.",
                _unlabelled(sources.purge_backlog),
            ),
            outbox_backlog=m.gauge_callback(
                "outbox_backlog", "Replies committed but not yet sent.", _unlabelled(sources.outbox_backlog)
            ),
        )


class PhotoTiming:
    """One photo's way through the pipeline: wall time from creation to `done`, and the CPU time of the
    steps wrapped with `cpu`, observed into `photo_processing_seconds` and `photo_pipeline_cpu_seconds`.

    A wrapped step adds the CPU time its own thread spent in it (`time.thread_time`: user + system time of
    that thread only), so wrap the work that runs inside a worker thread; time spent queueing for the pool,
    waiting for the disk or in other threads is not counted. The steps of one photo run one after another.
    """

    def __init__(self, metrics: BotMetrics) -> None:
        self._metrics = metrics
        self._started = time.perf_counter()
        self._cpu = 0.0

    @property
    def cpu_seconds(self) -> float:
        return self._cpu

    def cpu(self, function: Callable[P, T]) -> Callable[P, T]:
        """`function`, adding the CPU time the calling thread spends in it to this photo's total."""

        def counted(*args: P.args, **kwargs: P.kwargs) -> T:
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self._cpu += time.thread_time() - start

        return counted

    def done(self) -> None:
        """The photo is through (stored or refused): observe its wall and CPU time."""
        self._metrics.photo_processing_seconds.observe(time.perf_counter() - self._started)
        self._metrics.photo_pipeline_cpu_seconds.observe(self._cpu)
