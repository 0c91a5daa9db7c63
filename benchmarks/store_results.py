"""What `benchmarks/store_scaling.py` measures at each size, and how it is printed.

Plain data and printing only: the measuring lives in store_scaling.py (worker, HTTP)
and store_phases.py (in process on the store).
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field
from typing import Any

P99_GOAL_MS = 50.0
THROUGHPUT_GOAL = 0.9


def size_label(events: int) -> str:
    """10_000_000 -> `10M`, 300_000 -> `300k`."""
    if events >= 1_000_000 and events % 100_000 == 0:
        return f"{events / 1_000_000:g}M"
    if events >= 1_000 and events % 1_000 == 0:
        return f"{events // 1_000}k"
    return str(events)


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Latency:
    """Client-side milliseconds of one request kind: the cold first, then the timed ones."""

    first_ms: float
    samples_ms: list[float]
    rows: int

    def percentile(self, q: float) -> float:
        return percentile(self.samples_ms, q)


@dataclass
class Drain:
    """One worker draining one fresh topic, measured from its first chunk to its last."""

    events: int
    seconds: float
    cpu_seconds: float  # the worker's user+system CPU (chDB's threads included)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    @property
    def events_per_cpu_second(self) -> float:
        return self.events / self.cpu_seconds if self.cpu_seconds else 0.0


@dataclass
class SizeResult:
    events: int
    preload: dict[str, Any]
    drains: list[Drain] = field(default_factory=list)
    chunk_seconds: list[float] = field(default_factory=list)
    chunk_events: list[int] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    latencies: dict[str, Latency] = field(default_factory=dict)
    dashboard: dict[str, Latency] = field(default_factory=dict)
    reported_events: int = 0
    expected_events: int = 0
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Median events/s over the rounds."""
        return statistics.median(d.events_per_second for d in self.drains) if self.drains else 0.0

    @property
    def events_per_cpu_second(self) -> float:
        return statistics.median(d.events_per_cpu_second for d in self.drains) if self.drains else 0.0


def print_size(r: SizeResult) -> None:
    """Everything measured at one size."""
    print()
    print(f"=== {size_label(r.events)} stored events ({r.events:,}) ===")
    if r.preload["seconds"]:
        print("pre-load: " + ", ".join(f"{name} {s:.1f} s" for name, s in r.preload["seconds"].items()))
    print("store after pre-load: " + _shape(r.preload["shape"]))
    rounds = ", ".join(
        f"{d.events_per_second:,.0f} ({d.events_per_cpu_second:,.0f}/CPU-s, {d.events:,} events in {d.seconds:.1f} s)"
        for d in r.drains
    )
    print(
        f"worker: median {r.throughput:,.0f} events/s wall, {r.events_per_cpu_second:,.0f} events per worker CPU-second; "
        f"rounds: {rounds}; peak RSS {r.peak_rss_mb:,.0f} MB"
    )
    if r.chunk_seconds:
        per_event = [s / max(e, 1) * 1e6 for s, e in zip(r.chunk_seconds, r.chunk_events, strict=True)]
        print(
            f"per chunk (/stats last_chunk_seconds, {len(r.chunk_seconds)} chunks seen alone, "
            f"median {statistics.median(r.chunk_events):,.0f} events): p50 {statistics.median(r.chunk_seconds):.3f} s, "
            f"max {max(r.chunk_seconds):.3f} s, {statistics.median(per_event):.1f} us/event"
        )
    _print_chunk_profile(r.profile.get("chunk") or {})
    check = "ok" if r.reported_events == r.expected_events else f"MISMATCH, expected {r.expected_events:,}"
    print(f"report all-time total: {r.reported_events:,} events ({check})")
    if r.profile.get("shape"):
        print("store when the SQL alone was timed: " + _shape(r.profile["shape"]))
    sql = r.profile.get("report_sql", {})
    print(f"{'billing query (/report)':<24} {'rows':>6} {'cold ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'SQL p50':>8}")
    for name, lat in r.latencies.items():
        sql_ms = sql.get(name, {}).get("p50")
        print(
            f"{name:<24} {lat.rows:>6} {lat.first_ms:>8.1f} {lat.percentile(0.5):>8.1f} "
            f"{lat.percentile(0.99):>8.1f} {max(lat.samples_ms):>8.1f} {'-' if sql_ms is None else f'{sql_ms:.1f}':>8}"
        )
    print(f"{'dashboard /dashboard/data':<26} {'panels':>6} {'cold ms':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, lat in r.dashboard.items():
        print(f"{name:<26} {lat.rows:>6} {lat.first_ms:>8.1f} {lat.percentile(0.5):>8.1f} {lat.percentile(0.99):>8.1f}")
    _print_panels(r.profile.get("panels") or {})
    sys.stdout.flush()


def _shape(shape: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{t} {v['rows']:,} rows/{v['parts']} parts" for t, v in shape.items())


def _print_chunk_profile(p: dict[str, float]) -> None:
    """Wall ms (process CPU ms) of each step of a chunk, median over the timed chunks."""
    if not p:
        return
    steps = [k for k in p if k.startswith(("look", "price", "insert")) and not k.endswith(" cpu")]
    rest = p["chunk"] - sum(p[k] for k in steps)
    rest_cpu = p["chunk cpu"] - sum(p[f"{k} cpu"] for k in steps)
    print(
        f"in-process chunk of {p['events']:,.0f} events, median wall ms (CPU ms): {p['chunk'] * 1000:,.0f} "
        f"({p['chunk cpu'] * 1000:,.0f}) = "
        + ", ".join(f"{k} {p[k] * 1000:,.0f} ({p[f'{k} cpu'] * 1000:,.0f})" for k in steps)
        + f", decode+decide+rest {rest * 1000:,.0f} ({rest_cpu * 1000:,.0f})"
    )


def _print_panels(views: dict[str, dict[str, dict[str, float]]]) -> None:
    """Each dashboard panel's SQL alone, p50/p99 ms per view."""
    if not views:
        return
    names = list(dict.fromkeys(name for panels in views.values() for name in panels))
    print(f"{'dashboard panel SQL, p50/p99 ms':<24}" + "".join(f" {view:>22}" for view in views))
    for name in names:
        cells = []
        for panels in views.values():
            t = panels.get(name)
            cells.append("-" if t is None else f"{t['p50']:.1f}/{t['p99']:.1f}")
        print(f"{name:<24}" + "".join(f" {cell:>22}" for cell in cells))


def print_summary(results: list[SizeResult], baseline: float, random_ids: bool, fresh: int, rounds: int) -> None:
    """One line per size, then the two goals of issue 9."""
    print()
    print(f"=== summary ({'random UUIDv4' if random_ids else 'UUIDv7'} ids, {rounds} rounds of {fresh:,} fresh events) ===")
    print(f"baseline bare aiokafka + json.loads: {baseline:,.0f} events/s")
    names = list(results[0].latencies)
    print(f"{'stored':>7} {'events/s':>9} {'ev/CPU-s':>9} {'chunk s':>8}" + "".join(f" {n[:20] + ' p99':>24}" for n in names))
    for r in results:
        chunk = f"{statistics.median(r.chunk_seconds):.3f}" if r.chunk_seconds else "-"
        line = f"{size_label(r.events):>7} {r.throughput:>9,.0f} {r.events_per_cpu_second:>9,.0f} {chunk:>8}"
        print(line + "".join(f" {r.latencies[n].percentile(0.99):>21.1f} ms" for n in names))
    base, largest = results[0], results[-1]
    if len(results) > 1 and base.throughput:
        ratio = largest.throughput / base.throughput
        cpu_ratio = largest.events_per_cpu_second / base.events_per_cpu_second if base.events_per_cpu_second else 0.0
        verdict = "meets" if ratio >= THROUGHPUT_GOAL else "MISSES"
        print(
            f"throughput at {size_label(largest.events)} / at {size_label(base.events)}: {ratio:.2f} wall "
            f"({verdict} the >= {THROUGHPUT_GOAL} goal), {cpu_ratio:.2f} per worker CPU-second"
        )
    worst = max((lat.percentile(0.99), name, r.events) for r in results for name, lat in r.latencies.items())
    at_largest = all(lat.percentile(0.99) < P99_GOAL_MS for lat in largest.latencies.values())
    everywhere = all(lat.percentile(0.99) < P99_GOAL_MS for r in results for lat in r.latencies.values())
    print(
        f"every billing query p99 < {P99_GOAL_MS:.0f} ms: at {size_label(largest.events)} {'yes' if at_largest else 'NO'}, "
        f"at every size {'yes' if everywhere else 'NO'} (worst: {worst[1]} at {size_label(worst[2])}, {worst[0]:.1f} ms)"
    )
    sys.stdout.flush()
