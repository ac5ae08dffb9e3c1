"""Reading the bot's /metrics page: samples, histogram deltas over a phase, and quantiles from buckets.

Only what the bench needs of the text format 0.0.4: `name{label="value",...} number` lines, comments
skipped. A histogram's quantile is estimated the way Prometheus's `histogram_quantile` does it: find the
bucket holding the rank, interpolate linearly inside it (the lowest bucket starts at 0; a rank in the +Inf
bucket answers the highest finite bound). Whether a threshold that is itself a bucket bound holds is
exact (`fraction_at_most`), with no interpolation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

Labels = tuple[tuple[str, str], ...]
Samples = Mapping[str, Mapping[Labels, float]]

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class MetricsUnavailableError(RuntimeError):
    """The bot's metrics page could not be read (the status server is off, or not built yet)."""


def parse(text: str) -> dict[str, dict[Labels, float]]:
    """{metric sample name: {sorted label pairs: value}} from a scrape."""
    samples: dict[str, dict[Labels, float]] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None or line.startswith("#"):
            continue
        name, label_text, value = match.groups()
        labels = tuple(sorted(_LABEL.findall(label_text or "")))
        samples.setdefault(name, {})[labels] = float(value)
    return samples


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, dict[Labels, float]]:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                raise MetricsUnavailableError(f"{url} answered {response.status}")
            return parse(await response.text())
    except (aiohttp.ClientError, TimeoutError) as error:
        raise MetricsUnavailableError(f"{url} could not be read: {type(error).__name__}") from error


@dataclass(frozen=True)
class HistogramDelta:
    """What a histogram counted between two scrapes: cumulative counts per upper bound, sum and count."""

    bounds: tuple[float, ...]  # ascending, the last one +Inf
    cumulative: tuple[float, ...]
    total: float
    count: float

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def quantile(self, fraction: float) -> float | None:
        """The Prometheus estimate of a quantile; None when nothing was counted."""
        if not self.count:
            return None
        rank = fraction * self.count
        lower_bound, lower_count = 0.0, 0.0
        for bound, cumulative in zip(self.bounds, self.cumulative, strict=True):
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower_bound  # beyond the highest finite bucket: its bound is all we know
                inside = cumulative - lower_count
                share = (rank - lower_count) / inside if inside else 1.0
                return lower_bound + (bound - lower_bound) * share
            lower_bound, lower_count = bound, cumulative
        return lower_bound

    def fraction_at_most(self, bound: float) -> float | None:
        """The share of observations <= `bound`, which must be one of the bucket bounds (exact)."""
        if not self.count:
            return None
        if bound not in self.bounds:
            raise ValueError(f"{bound} is not a bucket bound of this histogram")
        return self.cumulative[self.bounds.index(bound)] / self.count


def histogram(samples: Samples, name: str) -> HistogramDelta | None:
    """The (unlabelled, or summed over labels) histogram `name` as scraped; None if the bot has none."""
    buckets = samples.get(f"{name}_bucket")
    if not buckets:
        return None
    by_bound: dict[float, float] = {}
    for labels, value in buckets.items():
        bound = float(dict(labels)["le"])
        by_bound[bound] = by_bound.get(bound, 0.0) + value
    bounds = tuple(sorted(by_bound))
    return HistogramDelta(
        bounds=bounds,
        cumulative=tuple(by_bound[bound] for bound in bounds),
        total=sum(samples.get(f"{name}_sum", {}).values()),
        count=sum(samples.get(f"{name}_count", {}).values()),
    )


def histogram_delta(before: Samples, after: Samples, name: str) -> HistogramDelta | None:
    """What `name` counted between the two scrapes; None if either lacks it."""
    first, second = histogram(before, name), histogram(after, name)
    if first is None or second is None or first.bounds != second.bounds:
        return None
    return HistogramDelta(
        bounds=second.bounds,
        cumulative=tuple(b - a for a, b in zip(first.cumulative, second.cumulative, strict=True)),
        total=second.total - first.total,
        count=second.count - first.count,
    )
