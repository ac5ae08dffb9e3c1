"""Counters, gauges and histograms for operators, rendered in the Prometheus text format 0.0.4.

There is no global registry: one `Metrics` is created at start-up and passed to whoever records, and
`BotMetrics` names the bot's own metric set as attributes, so a call site cannot misspell a metric.

Labels are declared up front (names), and a label value must come from a small fixed set (a reason, a
state, a command name): it must match ``[a-z0-9_.-]{1,64}`` and may not hold a run of four or more digits,
so an NHS number, a phone number, a date or a Matrix id can never become a label by mistake. Each metric
also caps how many label combinations it keeps, so a bug cannot grow the scrape without bound.

Recording is thread-safe (a photo may be timed inside the CPU pool). Gauges that are cheaper to compute
when scraped than to keep up to date (rows in SQLite) are async callbacks, run at scrape time with a
timeout; a failing or slow callback leaves its samples out and counts a failure, never breaks the scrape.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import ParamSpec, TypeVar

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
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


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Prometheus parses it: 3.0, 0.005, 1e-05, +Inf, -Inf, NaN."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def check_label_value(value: str) -> str:
    """Return the value if it is safe as a label value; raise `LabelError` (without echoing it) if not."""
    if len(value) > MAX_LABEL_VALUE_LENGTH:
        raise LabelError(f"label value longer than {MAX_LABEL_VALUE_LENGTH} characters")
    if not _LABEL_VALUE.fullmatch(value):
        raise LabelError("label value must match [a-z0-9_.-]+")
    if _DIGIT_RUN.search(value):
        raise LabelError("label value holds a run of 4+ digits: it looks like data, not a fixed name")
    return value


def _label_block(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(
        f'{name}="{escape_label_value(value)}"' for name, value in zip(names, values, strict=True)
    )
    return "{" + pairs + "}"


def _check_metric_name(name: str) -> None:
    if not _METRIC_NAME.fullmatch(name):
        raise MetricDefinitionError(f"invalid metric name {name!r}")


def _check_label_names(names: Sequence[str], *, reserved: frozenset[str] = frozenset()) -> tuple[str, ...]:
    for name in names:
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__") or name in reserved:
            raise MetricDefinitionError(f"invalid or reserved label name {name!r}")
    if len(set(names)) != len(names):
        raise MetricDefinitionError("duplicate label name")
    return tuple(names)


class _Family:
    """What every metric shares: its name, help, declared labels and the lock guarding its series."""

    kind = ""

    def __init__(self, name: str, help_text: str, label_names: tuple[str, ...], max_series: int) -> None:
        self.name = name
        self.help = help_text
        self.label_names = label_names
        self._max_series = max_series
        self._lock = threading.Lock()
        self._known: set[LabelValues] = set()

    def _key(self, labels: Mapping[str, LabelValue], *, admit: bool = True) -> LabelValues:
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
            if key not in self._known and len(self._known) >= self._max_series:
                raise LabelError(f"{self.name} already has {self._max_series} label combinations")
            self._known.add(key)
        return key

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]


def _plain(value: LabelValue) -> str:
    raw = value.value if isinstance(value, Enum) else value
    if not isinstance(raw, str):
        raise LabelError("label values are strings (or enums whose values are strings)")
    return raw


class Counter(_Family):
    """A count that only goes up: photos received, replies sent."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, label_names: tuple[str, ...], max_series: int) -> None:
        super().__init__(name, help_text, label_names, max_series)
        self._values: dict[LabelValues, float] = {} if label_names else {(): 0.0}

    def inc(self, amount: float = 1.0, /, **labels: LabelValue) -> None:
        if not amount >= 0:  # also refuses NaN
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: LabelValue) -> float:
        key = self._key(labels, admit=False)
        with self._lock:
            return self._values.get(key, 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            series = sorted(self._values.items())
        return [f"{self.name}{_label_block(self.label_names, key)} {format_value(v)}" for key, v in series]


class Gauge(_Family):
    """A value that goes up and down, kept up to date by the code that changes it."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, label_names: tuple[str, ...], max_series: int) -> None:
        super().__init__(name, help_text, label_names, max_series)
        self._values: dict[LabelValues, float] = {} if label_names else {(): 0.0}

    def set(self, value: float, /, **labels: LabelValue) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, /, **labels: LabelValue) -> None:
        if not math.isfinite(amount):
            raise ValueError("a gauge moves by a finite amount")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, /, **labels: LabelValue) -> None:
        self.inc(-amount, **labels)

    def value(self, **labels: LabelValue) -> float:
        key = self._key(labels, admit=False)
        with self._lock:
            return self._values.get(key, 0.0)

    def samples(self) -> list[str]:
        with self._lock:
            series = sorted(self._values.items())
        return [f"{self.name}{_label_block(self.label_names, key)} {format_value(v)}" for key, v in series]


@dataclass
class _Buckets:
    counts: list[int]  # per bucket, not cumulative; the last one is +Inf
    total: float = 0.0


class Histogram(_Family):
    """How long things take (or how big they are), counted into fixed buckets."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        label_names: tuple[str, ...],
        max_series: int,
        buckets: Sequence[float],
    ) -> None:
        super().__init__(name, help_text, label_names, max_series)
        bounds = tuple(float(bound) for bound in buckets)
        if not bounds or not all(math.isfinite(bound) for bound in bounds):
            raise MetricDefinitionError(f"{name}: buckets must be finite (+Inf is added) and not empty")
        if any(low >= high for low, high in itertools.pairwise(bounds)):
            raise MetricDefinitionError(f"{name}: buckets must be strictly increasing")
        self.bounds = bounds
        self._series: dict[LabelValues, _Buckets] = {} if label_names else {(): self._empty()}

    def _empty(self) -> _Buckets:
        return _Buckets(counts=[0] * (len(self.bounds) + 1))

    def observe(self, value: float, /, **labels: LabelValue) -> None:
        if math.isnan(value):
            raise ValueError("cannot observe NaN")
        key = self._key(labels)
        index = bisect.bisect_left(self.bounds, value)  # the first bucket whose bound is >= value
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = self._empty()
            series.counts[index] += 1
            series.total += value

    def time(self, **labels: LabelValue) -> HistogramTimer:
        """``with histogram.time(): ...`` observes how many seconds the block took."""
        return HistogramTimer(self, labels)

    def count(self, **labels: LabelValue) -> int:
        key = self._key(labels, admit=False)
        with self._lock:
            series = self._series.get(key)
            return sum(series.counts) if series else 0

    def samples(self) -> list[str]:
        with self._lock:
            series = sorted((key, list(b.counts), b.total) for key, b in self._series.items())
        names = (*self.label_names, "le")
        lines: list[str] = []
        for key, counts, total in series:
            cumulative = 0
            for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
                cumulative += count
                lines.append(
                    f"{self.name}_bucket{_label_block(names, (*key, format_value(bound)))} {cumulative}"
                )
            block = _label_block(self.label_names, key)
            lines.append(f"{self.name}_sum{block} {format_value(total)}")
            lines.append(f"{self.name}_count{block} {cumulative}")
        return lines


class HistogramTimer:
    def __init__(self, histogram: Histogram, labels: Mapping[str, LabelValue]) -> None:
        self._histogram = histogram
        self._labels = dict(labels)
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._histogram.observe(time.perf_counter() - self._start, **self._labels)


class ScrapeGauge(_Family):
    """A gauge computed when scraped, by an async source returning {label values: value}."""

    kind = "gauge"

    def __init__(
        self, name: str, help_text: str, label_names: tuple[str, ...], max_series: int, source: GaugeSource
    ) -> None:
        super().__init__(name, help_text, label_names, max_series)
        self.source = source

    def render_samples(self, values: Mapping[LabelValues, float]) -> list[str]:
        if len(values) > self._max_series:
            raise LabelError(f"{self.name}: source returned more than {self._max_series} series")
        lines = []
        for key in sorted(values):
            if not isinstance(key, tuple) or len(key) != len(self.label_names):
                raise LabelError(f"{self.name}: source keys must be tuples of {len(self.label_names)} values")
            for value in key:
                check_label_value(_plain(value))
            block = _label_block(self.label_names, key)
            lines.append(f"{self.name}{block} {format_value(float(values[key]))}")
        return lines


def _sample_names(kind: str, name: str) -> set[str]:
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


class Metrics:
    """The registry: declares metrics once, at start-up, and renders them all for a scrape."""

    def __init__(
        self, *, prefix: str = "", callback_timeout: float = 2.0, max_series: int = DEFAULT_MAX_SERIES
    ) -> None:
        self._prefix = prefix
        self._callback_timeout = callback_timeout
        self._max_series = max_series
        self._families: list[Counter | Gauge | Histogram | ScrapeGauge] = []
        self._sample_names: set[str] = set()
        self._callback_failures: Counter | None = None  # declared with the first computed gauge

    def _declare(self, kind: str, name: str) -> str:
        full = self._prefix + name
        _check_metric_name(full)
        names = _sample_names(kind, full) | {full}
        if names & self._sample_names:
            raise MetricDefinitionError(f"metric {full!r} clashes with one already declared")
        self._sample_names |= names
        return full

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        if not name.endswith("_total"):
            raise MetricDefinitionError(f"counter {name!r} must end in _total")
        full = self._declare("counter", name)
        counter = Counter(full, help_text, _check_label_names(labels), self._max_series)
        self._families.append(counter)
        return counter

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        full = self._declare("gauge", name)
        gauge = Gauge(full, help_text, _check_label_names(labels), self._max_series)
        self._families.append(gauge)
        return gauge

    def histogram(
        self, name: str, help_text: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Histogram:
        full = self._declare("histogram", name)
        label_names = _check_label_names(labels, reserved=frozenset({"le"}))
        histogram = Histogram(full, help_text, label_names, self._max_series, buckets)
        self._families.append(histogram)
        return histogram

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
        full = self._declare("gauge", name)
        gauge = ScrapeGauge(full, help_text, _check_label_names(labels), self._max_series, source)
        self._families.append(gauge)
        return gauge

    async def render(self) -> str:
        """Every metric in declaration order, in the text exposition format 0.0.4."""
        families = list(self._families)
        computed = [family for family in families if isinstance(family, ScrapeGauge)]
        results = await asyncio.gather(*(self._compute(gauge) for gauge in computed))
        scraped = dict(zip((gauge.name for gauge in computed), results, strict=True))
        lines: list[str] = []
        for family in families:
            lines += family.header()
            lines += scraped[family.name] if isinstance(family, ScrapeGauge) else family.samples()
        return "".join(line + "\n" for line in lines)

    async def _compute(self, gauge: ScrapeGauge) -> list[str]:
        try:
            async with asyncio.timeout(self._callback_timeout):
                values = await gauge.source()
            return gauge.render_samples(values)
        except Exception as error:  # noqa: BLE001 - one failing source must not take the whole scrape down
            log.warning("computed gauge %s left out of this scrape: %s", gauge.name, type(error).__name__)
            if self._callback_failures is not None:
                self._callback_failures.inc(gauge=gauge.name)
            return []


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
