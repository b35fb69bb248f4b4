"""RTC traffic simulator: version-1 quality reports from simulated apps, in event time.

Sessions join and leave following each app's diurnal curve (in its users' zone), weekends and
festivals; every active session emits one report per tick. Quality depends on the network type
and ISP, with lognormal RTT, occasional loss bursts and freezes driven by loss. Named faults and
benign events (see `simulator_faults`) are injected on demand and listed in a ground-truth file.
Everything is drawn from one seeded generator, so a seed and a start time give the same reports.
"""

from __future__ import annotations

import gzip
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import httpx
import numpy as np
import numpy.typing as npt
import orjson

from zhiban.core.clock import utc
from zhiban.core.errors import InvalidInput, ZhibanError
from zhiban.telemetry.simulator_faults import DIMENSIONS, Effects, Fault, apply_fault, rollout_share, traffic_factor

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_PEAK_SESSIONS = 2_000_000
MAX_SESSION_S = 8 * 3600
MAX_BATCH_REPORTS = 10_000  # the contract's limit for one ingest batch
BASE_JOIN_FAILURE = 0.005

# network -> (median rtt ms, mean loss %, median available kbps)
NETWORK_QUALITY: dict[str, tuple[float, float, float]] = {
    "wifi": (35.0, 0.35, 8000.0),
    "4g": (60.0, 0.8, 5000.0),
    "5g": (38.0, 0.4, 20000.0),
    "ethernet": (22.0, 0.1, 30000.0),
}
# isp -> (rtt factor, loss factor); ISPs not listed are average
ISP_QUALITY: dict[str, tuple[float, float]] = {
    "china-mobile": (1.15, 1.3),
    "china-unicom": (1.05, 1.1),
    "china-telecom": (1.0, 1.0),
    "telkomsel": (1.3, 1.4),
    "indosat": (1.2, 1.3),
    "smart": (1.25, 1.3),
    "globe": (1.2, 1.2),
}


@dataclass(frozen=True)
class Country:
    """A country of a region and the mix of its users' ISPs."""

    code: str
    weight: float
    isps: dict[str, float]


@dataclass(frozen=True)
class Region:
    """A region of the media network: its countries, edges and (if not the app's) users' zone."""

    name: str
    weight: float
    countries: tuple[Country, ...]
    edges: dict[str, float]
    zone: str | None = None
    rtt_factor: float = 1.0


@dataclass(frozen=True)
class Platform:
    """A client platform and the mix of SDK versions its users run."""

    name: str
    weight: float
    sdk_versions: dict[str, float]


@dataclass(frozen=True)
class SimulatedApp:
    """A customer app: where its users are, what they run, and when they come."""

    app_id: str
    zone: str
    regions: tuple[Region, ...]
    platforms: tuple[Platform, ...]
    networks: dict[str, float]
    roles: dict[str, float]
    hourly: tuple[float, ...]  # relative traffic at each local hour, the peak at 1.0
    peak_sessions: int = 2000  # the scale knob: concurrent sessions at the weekday peak
    weekend_factor: float = 1.15
    festival_dates: frozenset[date] = frozenset()
    festival_factor: float = 1.3
    mean_session_s: float = 900.0
    session_sigma: float = 1.1  # lognormal shape: the tail of long sessions
    channel_prefix: str = "room"
    sessions_per_channel: int = 40
    video_share: float = 1.0  # sessions with video; the rest are audio-only
    video_fps: int = 15
    video_kbps: float = 900.0

    def __post_init__(self) -> None:
        if not self.app_id or len(self.app_id) > 64:
            raise InvalidInput("app_id must be 1-64 characters")
        if len(self.hourly) != 24 or any(level < 0 for level in self.hourly):
            raise InvalidInput(f"{self.app_id}: hourly needs 24 non-negative levels")
        if not 0 <= self.peak_sessions <= MAX_PEAK_SESSIONS:
            raise InvalidInput(f"{self.app_id}: peak_sessions must be within [0, {MAX_PEAK_SESSIONS}]")
        if not 10 <= self.mean_session_s <= MAX_SESSION_S:
            raise InvalidInput(f"{self.app_id}: mean_session_s must be within [10, {MAX_SESSION_S}]")
        if not self.regions or not self.platforms:
            raise InvalidInput(f"{self.app_id}: needs at least one region and one platform")
        for network in self.networks:
            if network not in NETWORK_QUALITY:
                raise InvalidInput(f"{self.app_id}: unknown network {network!r}")
        ZoneInfo(self.zone)


def festival_days(country: str, years: Iterable[int]) -> frozenset[date]:
    """Public festivals of a country (substituted days off excluded), from the `holidays` package."""
    days = holidays.country_holidays(country, years=list(years))
    return frozenset(day for day, name in days.items() if "day off" not in name.lower())


_CN_FESTIVALS = festival_days("CN", range(2024, 2031))
_LIVE_HOURLY: tuple[float, ...] = (
    0.55,
    0.4,
    0.28,
    0.18,
    0.12,
    0.1,
    0.12,
    0.18,
    0.25,
    0.3,
    0.33,
    0.36,
    0.42,
    0.4,
    0.38,
    0.4,
    0.45,
    0.5,
    0.6,
    0.75,
    0.9,
    1.0,
    0.95,
    0.78,
)
_CLASS_HOURLY: tuple[float, ...] = (
    0.01,
    0.01,
    0.01,
    0.01,
    0.01,
    0.02,
    0.05,
    0.2,
    0.85,
    1.0,
    1.0,
    0.9,
    0.4,
    0.7,
    0.95,
    0.95,
    0.85,
    0.5,
    0.35,
    0.55,
    0.5,
    0.25,
    0.08,
    0.03,
)
_SOCIAL_HOURLY: tuple[float, ...] = (
    0.6,
    0.45,
    0.3,
    0.2,
    0.14,
    0.12,
    0.15,
    0.22,
    0.3,
    0.33,
    0.35,
    0.4,
    0.45,
    0.42,
    0.4,
    0.42,
    0.48,
    0.55,
    0.65,
    0.78,
    0.9,
    1.0,
    0.98,
    0.8,
)
_CN_REGIONS = (
    Region(
        "cn-east",
        0.45,
        (Country("CN", 1.0, {"china-mobile": 0.45, "china-telecom": 0.3, "china-unicom": 0.25}),),
        {"sh-edge-07": 0.35, "sh-edge-03": 0.25, "hz-edge-01": 0.2, "nj-edge-02": 0.2},
    ),
    Region(
        "cn-north",
        0.3,
        (Country("CN", 1.0, {"china-mobile": 0.4, "china-unicom": 0.4, "china-telecom": 0.2}),),
        {"bj-edge-02": 0.5, "bj-edge-05": 0.3, "tj-edge-01": 0.2},
    ),
    Region(
        "cn-south",
        0.25,
        (Country("CN", 1.0, {"china-mobile": 0.45, "china-telecom": 0.4, "china-unicom": 0.15}),),
        {"gz-edge-03": 0.55, "sz-edge-01": 0.45},
    ),
)


def demo_apps(peak_sessions: int = 2000) -> list[SimulatedApp]:
    """The demo customers: liveco (live streaming), classmate (online class), hiyo (global social)."""
    liveco = SimulatedApp(
        app_id="liveco",
        zone="Asia/Shanghai",
        regions=_CN_REGIONS,
        platforms=(
            Platform("android", 0.55, {"4.3.2": 0.3, "4.3.1": 0.45, "4.2.9": 0.25}),
            Platform("ios", 0.35, {"4.3.1": 0.6, "4.3.0": 0.4}),
            Platform("web", 0.07, {"web-4.20.0": 0.7, "web-4.19.2": 0.3}),
            Platform("windows", 0.03, {"4.3.1": 1.0}),
        ),
        networks={"wifi": 0.55, "4g": 0.3, "5g": 0.13, "ethernet": 0.02},
        roles={"host": 0.03, "audience": 0.97},
        hourly=_LIVE_HOURLY,
        peak_sessions=peak_sessions,
        festival_dates=_CN_FESTIVALS,
        channel_prefix="room",
        sessions_per_channel=60,
    )
    classmate = SimulatedApp(
        app_id="classmate",
        zone="Asia/Shanghai",
        regions=_CN_REGIONS,
        platforms=(
            Platform("windows", 0.3, {"4.3.1": 0.8, "4.2.9": 0.2}),
            Platform("mac", 0.1, {"4.3.1": 1.0}),
            Platform("web", 0.2, {"web-4.20.0": 1.0}),
            Platform("android", 0.25, {"4.3.1": 0.7, "4.2.9": 0.3}),
            Platform("ios", 0.15, {"4.3.1": 1.0}),
        ),
        networks={"wifi": 0.7, "ethernet": 0.15, "4g": 0.1, "5g": 0.05},
        roles={"teacher": 0.04, "student": 0.96},
        hourly=_CLASS_HOURLY,
        peak_sessions=peak_sessions,
        weekend_factor=0.3,
        festival_dates=_CN_FESTIVALS,
        festival_factor=0.2,  # no school on public holidays
        mean_session_s=2400.0,
        session_sigma=0.5,
        channel_prefix="class",
        sessions_per_channel=30,
        video_share=0.9,
        video_kbps=600.0,
    )
    hiyo = SimulatedApp(
        app_id="hiyo",
        zone="UTC",
        regions=(
            Region(
                "us-east",
                0.35,
                (Country("US", 1.0, {"comcast": 0.35, "verizon": 0.3, "att": 0.35}),),
                {"nyc-edge-01": 0.4, "iad-edge-02": 0.35, "atl-edge-01": 0.25},
                zone="America/New_York",
            ),
            Region(
                "eu-west",
                0.3,
                (
                    Country("GB", 0.4, {"bt": 0.4, "virgin-media": 0.3, "sky": 0.3}),
                    Country("DE", 0.35, {"deutsche-telekom": 0.6, "vodafone-de": 0.4}),
                    Country("FR", 0.25, {"orange": 0.6, "free": 0.4}),
                ),
                {"lon-edge-01": 0.4, "fra-edge-02": 0.35, "par-edge-01": 0.25},
                zone="Europe/Paris",
            ),
            Region(
                "ap-southeast",
                0.35,
                (
                    Country("SG", 0.2, {"singtel": 0.6, "starhub": 0.4}),
                    Country("ID", 0.35, {"telkomsel": 0.6, "indosat": 0.4}),
                    Country("TH", 0.25, {"ais": 0.55, "true": 0.45}),
                    Country("PH", 0.2, {"globe": 0.5, "smart": 0.5}),
                ),
                {"sg-edge-01": 0.45, "sg-edge-04": 0.3, "jkt-edge-02": 0.25},
                zone="Asia/Singapore",
                rtt_factor=1.2,
            ),
        ),
        platforms=(
            Platform("android", 0.5, {"5.1.0": 0.6, "5.0.3": 0.4}),
            Platform("ios", 0.42, {"5.1.0": 0.7, "5.0.3": 0.3}),
            Platform("web", 0.08, {"web-5.1.0": 1.0}),
        ),
        networks={"wifi": 0.45, "4g": 0.35, "5g": 0.18, "ethernet": 0.02},
        roles={"broadcaster": 0.2, "audience": 0.8},
        hourly=_SOCIAL_HOURLY,
        peak_sessions=peak_sessions,
        weekend_factor=1.2,
        mean_session_s=480.0,
        session_sigma=1.2,
        channel_prefix="call",
        sessions_per_channel=4,
        video_share=0.6,
        video_fps=24,
        video_kbps=700.0,
    )
    return [liveco, classmate, hiyo]


def _weights(mix: dict[str, float]) -> FloatArray:
    w = np.array(list(mix.values()), dtype=float)
    if w.size == 0 or (w < 0).any() or w.sum() <= 0:
        raise InvalidInput(f"a mix needs positive weights: {mix}")
    return np.asarray(w / w.sum(), dtype=np.float64)


class _Vocabulary:
    """Dimension values of one app and their integer codes (sessions store codes, not strings)."""

    def __init__(self, app: SimulatedApp) -> None:
        self.values: dict[str, list[str]] = {dim: [] for dim in DIMENSIONS}
        self.codes: dict[str, dict[str, int]] = {dim: {} for dim in DIMENSIONS}
        for region in app.regions:
            self.add("region", region.name)
            for edge in region.edges:
                self.add("edge", edge)
            for country in region.countries:
                self.add("country", country.code)
                for isp in country.isps:
                    self.add("isp", isp)
        for platform in app.platforms:
            self.add("platform", platform.name)
            for version in platform.sdk_versions:
                self.add("sdk_version", version)
        for network in app.networks:
            self.add("network", network)
        for role in app.roles:
            self.add("role", role)
        self.channels = max(1, app.peak_sessions // max(1, app.sessions_per_channel))
        self.values["channel"] = [f"{app.channel_prefix}-{1000 + i}" for i in range(self.channels)]
        self.codes["channel"] = {v: i for i, v in enumerate(self.values["channel"])}

    def add(self, dim: str, value: str) -> int:
        if value not in self.codes[dim]:
            self.codes[dim][value] = len(self.values[dim])
            self.values[dim].append(value)
        return self.codes[dim][value]

    def lookup(self, dim: str, table: Callable[[str], float]) -> FloatArray:
        return np.array([table(v) for v in self.values[dim]], dtype=float)


_COLUMNS = (*DIMENSIONS, "end", "start", "phase", "attempt", "video", "rtt", "loss", "kbps", "user")


class _Sessions:
    """The active sessions of one app, column-wise, plus each one's fixed report fields."""

    def __init__(self) -> None:
        self.cols: dict[str, npt.NDArray[Any]] = {c: np.zeros(0, dtype=np.int64) for c in _COLUMNS}
        for c in ("rtt", "loss", "kbps"):
            self.cols[c] = np.zeros(0)
        self.fixed: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.fixed)

    def extend(self, cols: dict[str, npt.NDArray[Any]], fixed: list[dict[str, Any]]) -> None:
        for c in _COLUMNS:
            self.cols[c] = np.concatenate([self.cols[c], cols[c]])
        self.fixed.extend(fixed)

    def keep(self, mask: npt.NDArray[np.bool_]) -> None:
        for c in _COLUMNS:
            self.cols[c] = self.cols[c][mask]
        self.fixed = [f for f, k in zip(self.fixed, mask.tolist(), strict=True) if k]


class _AppTraffic:
    """Generates one app's sessions and reports, tick by tick."""

    def __init__(self, app: SimulatedApp, faults: list[Fault], rng: np.random.Generator, tick_s: int) -> None:
        self.app = app
        self.rng = rng
        self.tick_s = tick_s
        self.vocab = _Vocabulary(app)
        self.faults = faults
        self.sessions = _Sessions()
        self.retries: tuple[dict[str, npt.NDArray[Any]], list[dict[str, Any]]] | None = None
        for fault in faults:
            if fault.kind == "sdk_rollout":
                self.vocab.add("sdk_version", fault.slice["sdk_version"])
            for dim, value in fault.slice.items():
                if value not in self.vocab.codes[dim]:
                    raise InvalidInput(f"{fault.kind}: {app.app_id} has no {dim}={value!r}")
        self.region_zones = [ZoneInfo(r.zone or app.zone) for r in app.regions]
        self.region_w = _weights({r.name: r.weight for r in app.regions})
        v = self.vocab
        self.net_rtt = v.lookup("network", lambda n: NETWORK_QUALITY[n][0])
        self.net_loss = v.lookup("network", lambda n: NETWORK_QUALITY[n][1])
        self.net_kbps = v.lookup("network", lambda n: NETWORK_QUALITY[n][2])
        self.isp_rtt = v.lookup("isp", lambda i: ISP_QUALITY.get(i, (1.0, 1.0))[0])
        self.isp_loss = v.lookup("isp", lambda i: ISP_QUALITY.get(i, (1.0, 1.0))[1])
        factors = {r.name: r.rtt_factor for r in app.regions}
        self.region_rtt = v.lookup("region", lambda r: factors[r])
        self.web = np.array([p == "web" for p in v.values["platform"]])
        self.counter = 0

    def add_fault(self, fault: Fault) -> None:
        """Inject a fault into a running simulation (checked like the ones given at the start)."""
        if fault.kind == "sdk_rollout":
            self.vocab.add("sdk_version", fault.slice["sdk_version"])
        for dim, value in fault.slice.items():
            if value not in self.vocab.codes[dim]:
                raise InvalidInput(f"{fault.kind}: {self.app.app_id} has no {dim}={value!r}")
        self.faults.append(fault)

    # -- traffic volume -------------------------------------------------------------------------

    def target(self, moment: datetime) -> FloatArray:
        """Expected concurrent sessions per region at `moment`."""
        app = self.app
        levels = np.empty(len(app.regions))
        for i, zone in enumerate(self.region_zones):
            local = moment.astimezone(zone)
            hour = local.hour + local.minute / 60 + local.second / 3600
            h0 = int(hour) % 24
            frac = hour - int(hour)
            level = app.hourly[h0] + (app.hourly[(h0 + 1) % 24] - app.hourly[h0]) * frac
            if local.weekday() >= 5:
                level *= app.weekend_factor
            if local.date() in app.festival_dates:
                level *= app.festival_factor
            levels[i] = level
        return np.asarray(app.peak_sessions * self.region_w * levels * traffic_factor(self.faults, moment))

    def durations(self, n: int, length_biased: bool) -> FloatArray:
        """Session lengths in s: lognormal; length-biased for sessions already running at the start."""
        sigma = self.app.session_sigma
        mu = math.log(self.app.mean_session_s) - sigma**2 / 2 + (sigma**2 if length_biased else 0.0)
        return np.asarray(np.minimum(self.rng.lognormal(mu, sigma, n), MAX_SESSION_S))

    # -- new sessions -----------------------------------------------------------------------------

    def _choose(self, dim: str, mix: dict[str, float], n: int) -> IntArray:
        codes = np.array([self.vocab.codes[dim][v] for v in mix], dtype=np.int64)
        return np.asarray(codes[self.rng.choice(len(codes), size=n, p=_weights(mix))])

    def arrivals(self, tick: int, moment: datetime, counts: IntArray, warm: bool) -> None:
        """Add `counts[r]` new sessions in each region r (already running ones when `warm`)."""
        n = int(counts.sum())
        if n == 0:
            return
        app, rng, v = self.app, self.rng, self.vocab
        cols: dict[str, npt.NDArray[Any]] = {}
        region_idx = np.repeat(np.arange(len(app.regions)), counts)
        cols["region"] = np.array([v.codes["region"][r.name] for r in app.regions], dtype=np.int64)[region_idx]
        for dim in ("country", "isp", "edge"):
            cols[dim] = np.zeros(n, dtype=np.int64)
        for r, region in enumerate(app.regions):
            in_region = np.flatnonzero(region_idx == r)
            if in_region.size == 0:
                continue
            cols["edge"][in_region] = self._choose("edge", region.edges, in_region.size)
            country_pick = rng.choice(
                len(region.countries), size=in_region.size, p=_weights({c.code: c.weight for c in region.countries})
            )
            for c, country in enumerate(region.countries):
                rows = in_region[country_pick == c]
                cols["country"][rows] = v.codes["country"][country.code]
                cols["isp"][rows] = self._choose("isp", country.isps, rows.size)
        cols["network"] = self._choose("network", app.networks, n)
        cols["role"] = self._choose("role", app.roles, n)
        cols["platform"] = self._choose("platform", {p.name: p.weight for p in app.platforms}, n)
        cols["sdk_version"] = np.zeros(n, dtype=np.int64)
        for platform in app.platforms:
            rows = np.flatnonzero(cols["platform"] == v.codes["platform"][platform.name])
            cols["sdk_version"][rows] = self._choose("sdk_version", platform.sdk_versions, rows.size)
            for fault in self.faults:
                if fault.kind == "sdk_rollout" and fault.slice["platform"] == platform.name:
                    upgraded = rows[rng.random(rows.size) < rollout_share(fault, moment)]
                    cols["sdk_version"][upgraded] = v.codes["sdk_version"][fault.slice["sdk_version"]]
        # Popular channels draw most of the audience.
        cols["channel"] = np.minimum((v.channels * rng.random(n) ** 3).astype(np.int64), v.channels - 1)
        length = self.durations(n, length_biased=warm)
        if warm:
            length *= rng.random(n)  # the part still to run
        cols["start"] = np.full(n, tick if not warm else tick - 1, dtype=np.int64)
        cols["end"] = tick + np.maximum(1, np.ceil(length / self.tick_s)).astype(np.int64)
        cols["phase"] = rng.integers(0, self.tick_s, n)
        cols["attempt"] = np.zeros(n, dtype=np.int64)
        cols["video"] = (rng.random(n) < app.video_share).astype(np.int64)
        net, isp = cols["network"], cols["isp"]
        cols["rtt"] = self.net_rtt[net] * self.isp_rtt[isp] * self.region_rtt[cols["region"]] * rng.lognormal(0, 0.4, n)
        cols["loss"] = self.net_loss[net] * self.isp_loss[isp] * rng.exponential(1.0, n)
        cols["kbps"] = self.net_kbps[net] * rng.lognormal(0, 0.5, n)
        cols["user"] = rng.integers(1, 10**8, n)
        session_ids = rng.integers(0, 2**48, n)
        self.sessions.extend(cols, self._fixed(cols, session_ids))

    def _fixed(self, cols: dict[str, npt.NDArray[Any]], session_ids: IntArray) -> list[dict[str, Any]]:
        """Each session's fields that do not change from one report to the next."""
        app_id, vals = self.app.app_id, self.vocab.values
        by_dim = {dim: [vals[dim][c] for c in cols[dim].tolist()] for dim in DIMENSIONS}
        fixed = []
        for i, (sid, user) in enumerate(zip(session_ids.tolist(), cols["user"].tolist(), strict=True)):
            report: dict[str, Any] = {"v": 1, "app_id": app_id, "ts": "", "interval_ms": self.tick_s * 1000}
            report["session_id"] = f"s-{sid:012x}"
            report["channel"] = by_dim["channel"][i]
            report["user_id"] = f"u{user}"
            for dim in DIMENSIONS:
                if dim != "channel":
                    report[dim] = by_dim[dim][i]
            fixed.append(report)
        return fixed

    def _retry_failed(self, tick: int, failed: npt.NDArray[np.bool_]) -> None:
        """Half of the users whose join failed try again on the next tick, at most twice."""
        s = self.sessions
        again = failed & (s.cols["attempt"] < 2) & (self.rng.random(len(s)) < 0.5)
        rows = np.flatnonzero(again)
        if rows.size == 0:
            return
        cols = {c: s.cols[c][rows].copy() for c in _COLUMNS}
        cols["attempt"] += 1
        cols["start"][:] = tick + 1
        cols["end"] = tick + 1 + np.maximum(1, np.ceil(self.durations(rows.size, False) / self.tick_s)).astype(int)
        fixed = []
        for r, sid in zip(rows.tolist(), self.rng.integers(0, 2**48, rows.size).tolist(), strict=True):
            report = dict(s.fixed[r])
            report["session_id"] = f"s-{sid:012x}"
            fixed.append(report)
        self.retries = (cols, fixed)

    # -- one tick -----------------------------------------------------------------------------------

    def step(self, tick: int, moment: datetime) -> list[dict[str, Any]]:
        """Advance one tick starting at `moment` and return the reports of the interval."""
        rng, tick_s = self.rng, self.tick_s
        mean_target = self.target(moment)
        if tick == 0:
            self.arrivals(tick, moment, rng.poisson(mean_target), warm=True)
        else:
            self.arrivals(tick, moment, rng.poisson(mean_target * tick_s / self.app.mean_session_s), warm=False)
        if self.retries is not None:
            self.sessions.extend(*self.retries)
            self.retries = None
        s = self.sessions
        n = len(s)
        if n == 0:
            return []
        cols = s.cols
        effects = Effects.none(n)
        for fault in self.faults:
            if fault.active(moment) and not fault.benign:
                mask = np.ones(n, dtype=bool)
                for dim, value in fault.slice.items():
                    mask &= cols[dim] == self.vocab.codes[dim][value]
                apply_fault(effects, fault, mask, moment)
        reports = self._reports(tick, moment, effects)
        s.keep(cols["end"] > tick + 1)
        return reports

    def _reports(self, tick: int, moment: datetime, fx: Effects) -> list[dict[str, Any]]:
        rng, s = self.rng, self.sessions
        n, cols, interval = len(s), s.cols, self.tick_s * 1000
        first = cols["start"] == tick
        dropped = (rng.random(n) < fx.drop) & ~first
        cols["end"][dropped] = tick + 1
        last = cols["end"] == tick + 1

        rtt = cols["rtt"] * rng.lognormal(0, 0.2, n) + fx.add_rtt
        burst = rng.random(n) < 0.01
        loss = cols["loss"] * rng.lognormal(0, 0.6, n) + burst * rng.uniform(3, 15, n) + fx.add_loss
        loss = np.clip(loss, 0, 100)
        jitter = 0.12 * rtt * rng.lognormal(0, 0.3, n) + 1.2 * loss + fx.add_jitter
        join_latency = np.clip(
            600 * (rtt / 60) ** 0.3 * rng.lognormal(0, 0.3, n) + fx.add_join_latency, 150, 15_000
        ).astype(np.int64)
        join_ok = rng.random(n) >= np.minimum(1.0, BASE_JOIN_FAILURE + fx.join_fail)
        failed = first & ~join_ok
        cols["end"][failed] = tick + 1
        active = np.full(n, interval, dtype=np.int64)
        active[first] = np.maximum(0, interval - join_latency[first])
        active[last & ~first] = (interval * rng.uniform(0.05, 1, n)).astype(np.int64)[last & ~first]
        gap = np.where(self.web[cols["platform"]], 500, 600)
        v_count = rng.poisson(0.03 + 0.12 * loss + fx.add_freezes)
        v_freeze = np.minimum(active, v_count * gap + rng.gamma(v_count, 700)).astype(np.int64)
        a_count = rng.poisson(0.01 + 0.05 * loss + 0.5 * fx.add_freezes)
        a_freeze = np.minimum(active, a_count * 200 + rng.gamma(a_count, 250)).astype(np.int64)
        frozen = np.divide(v_freeze, active, out=np.zeros(n), where=active > 0)
        avail = cols["kbps"] * rng.lognormal(0, 0.15, n) * fx.kbps_factor / (1 + loss / 10)
        v_kbps = np.minimum(self.app.video_kbps, 0.7 * avail) * (1 - frozen)
        fps = np.rint(self.app.video_fps * (1 - frozen) * rng.uniform(0.9, 1.0, n)).astype(np.int64)
        v_delay = rtt / 2 + 2 * jitter + 110 + rng.exponential(20, n)
        a_delay = rtt / 2 + 1.5 * jitter + 70 + rng.exponential(10, n)
        av_sync = (rng.normal(0, 18, n) + fx.add_av_sync).astype(np.int64)
        uplink = loss * rng.lognormal(-0.7, 0.5, n)
        reconnect = burst & (loss > 8) & (rng.random(n) < 0.3)
        first_frame = join_latency + 150 + rng.exponential(200, n).astype(np.int64)

        ts_strings = [_rfc3339(moment + timedelta(seconds=p + 1)) for p in range(self.tick_s)]
        columns = zip(
            s.fixed,
            cols["phase"].tolist(),
            first.tolist(),
            last.tolist(),
            join_ok.tolist(),
            dropped.tolist(),
            reconnect.tolist(),
            cols["video"].tolist(),
            join_latency.tolist(),
            first_frame.tolist(),
            active.tolist(),
            v_freeze.tolist(),
            a_freeze.tolist(),
            np.round(loss, 2).tolist(),
            np.round(0.9 * loss, 2).tolist(),
            np.round(uplink, 2).tolist(),
            jitter.astype(np.int64).tolist(),
            rtt.astype(np.int64).tolist(),
            v_delay.astype(np.int64).tolist(),
            a_delay.astype(np.int64).tolist(),
            v_kbps.astype(np.int64).tolist(),
            np.minimum(48, 0.2 * avail).astype(np.int64).tolist(),
            avail.astype(np.int64).tolist(),
            fps.tolist(),
            av_sync.tolist(),
            fx.join_error.tolist(),
            strict=True,
        )
        out: list[dict[str, Any]] = []
        append = out.append
        for (fixed, phase, is_first, is_last, ok, drop, recon, video, jl, ff, act, vf, af, lo, alo, up, ji, rt,
             vd, ad, vk, ak, av, fp, sync, code) in columns:  # fmt: skip
            report = fixed.copy()
            report["ts"] = ts_strings[phase]
            if is_first and not ok:
                report["events"] = [{"type": "join", "ok": False, "latency_ms": jl, "error_code": code}]
                append(report)
                continue
            if is_first or is_last or recon:
                events: list[dict[str, Any]] = []
                if is_first:
                    events.append({"type": "join", "ok": True, "latency_ms": jl})
                    if video:
                        events.append({"type": "first_frame", "latency_ms": ff})
                if recon:
                    events.append({"type": "reconnect"})
                if drop:
                    events.append({"type": "error", "code": 1001, "message": "connection lost"})
                if is_last:
                    events.append({"type": "leave", "reason": "error" if drop else "user"})
                report["events"] = events
            report["audio"] = {
                "active_ms": act,
                "freeze_ms": af,
                "loss_pct": alo,
                "jitter_ms": ji,
                "e2e_delay_ms": ad,
                "bitrate_kbps": ak,
            }
            if video:
                report["video"] = {
                    "active_ms": act,
                    "freeze_ms": vf,
                    "fps": fp,
                    "loss_pct": lo,
                    "e2e_delay_ms": vd,
                    "bitrate_kbps": vk,
                }
                report["av_sync_ms"] = sync
            report["net"] = {"rtt_ms": rt, "uplink_loss_pct": up, "downlink_loss_pct": lo, "available_kbps": av}
            append(report)
        self._retry_failed(tick, failed)
        return out


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Simulator:
    """Seeded traffic of several apps in event time: `run(until)` for a span, `advance_to(now)` live."""

    def __init__(
        self,
        apps: Sequence[SimulatedApp],
        faults: Sequence[Fault] = (),
        seed: int = 0,
        start: datetime | None = None,
        tick: timedelta = timedelta(seconds=10),
        max_catch_up_ticks: int = 360,
    ) -> None:
        if start is None or start.tzinfo is None:
            raise InvalidInput("the simulation needs a timezone-aware start")
        tick_s = tick.total_seconds()
        if tick_s != int(tick_s) or not 1 <= tick_s <= 60:
            raise InvalidInput("tick must be a whole number of seconds within [1, 60]")
        ids = [a.app_id for a in apps]
        if len(set(ids)) != len(ids):
            raise InvalidInput("app ids must be unique")
        for fault in faults:
            if fault.app_id not in ids:
                raise InvalidInput(f"fault {fault.kind} targets unknown app {fault.app_id!r}")
        self.apps = list(apps)
        self.faults = list(faults)
        self.seed = seed
        self.start = utc(start)
        self.tick = tick
        self.max_catch_up_ticks = max_catch_up_ticks
        self._ticks_done = 0
        # One child stream per app: adding an app does not change the traffic of the others.
        streams = np.random.SeedSequence(seed).spawn(len(self.apps))
        self._traffic = [
            _AppTraffic(a, [f for f in self.faults if f.app_id == a.app_id], np.random.default_rng(st), int(tick_s))
            for a, st in zip(self.apps, streams, strict=True)
        ]

    def add_fault(self, fault: Fault) -> None:
        """Inject a fault or benign event into the running simulation (the live demo's fault API)."""
        for traffic in self._traffic:
            if traffic.app.app_id == fault.app_id:
                traffic.add_fault(fault)
                self.faults.append(fault)
                return
        raise InvalidInput(f"fault {fault.kind} targets unknown app {fault.app_id!r}")

    @property
    def cursor(self) -> datetime:
        """Start of the next tick to be generated."""
        return self.start + self._ticks_done * self.tick

    def step(self) -> list[dict[str, Any]]:
        """Generate the next tick of every app (one batch)."""
        moment = self.cursor
        batch: list[dict[str, Any]] = []
        for traffic in self._traffic:
            batch.extend(traffic.step(self._ticks_done, moment))
        self._ticks_done += 1
        return batch

    def run(self, until: datetime) -> Iterator[list[dict[str, Any]]]:
        """Yield one batch per tick until the cursor reaches `until` (event time, not the wall clock)."""
        until = utc(until)
        while self.cursor + self.tick <= until:
            yield self.step()

    def advance_to(self, now: datetime) -> list[dict[str, Any]]:
        """Live mode: the reports of every tick completed by `now`, at most `max_catch_up_ticks` of them."""
        now = utc(now)
        out: list[dict[str, Any]] = []
        for _ in range(self.max_catch_up_ticks):
            if self.cursor + self.tick > now:
                break
            out.extend(self.step())
        return out

    def truth(self) -> dict[str, Any]:
        """Ground truth of the span generated so far: injected faults, benign events, festival days."""
        end = self.cursor
        events = [f.truth() for f in self.faults if f.start < end and f.end > self.start]
        for app in self.apps:
            for day in sorted(app.festival_dates):
                zone = ZoneInfo(app.zone)
                day_start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
                if day_start < end and day_start + timedelta(days=1) > self.start:
                    record = Fault("festival_surge", app.app_id, day_start, timedelta(days=1), {}, app.festival_factor)
                    events.append(record.truth() | {"source": "calendar"})
        events.sort(key=lambda e: (e["start"], e["app_id"], e["kind"]))
        return {
            "generator": "zhiban-simulator",
            "seed": self.seed,
            "start": _rfc3339(self.start),
            "end": _rfc3339(end),
            "tick_s": int(self.tick.total_seconds()),
            "apps": [a.app_id for a in self.apps],
            "events": events,
        }


# -- writers ------------------------------------------------------------------------------------------


def truth_path(out: Path) -> Path:
    """Where the ground truth of `out` goes: `<out>.truth.json`."""
    return out.with_name(out.name + ".truth.json")


class NdjsonGzWriter:
    """Writes batches of reports as gzip-compressed NDJSON."""

    def __init__(self, path: Path, compresslevel: int = 3) -> None:
        self.path = path
        # Kept open across many write() calls; closed by close() or the context manager.
        self._raw = gzip.GzipFile(path, "wb", compresslevel=compresslevel)
        self.reports = 0

    def write(self, batch: Sequence[dict[str, Any]]) -> None:
        dumps = orjson.dumps
        self._raw.write(b"".join(dumps(r) + b"\n" for r in batch))
        self.reports += len(batch)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> NdjsonGzWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_ndjson_gz(path: Path) -> Iterator[dict[str, Any]]:
    """Read back the reports of a file written by `NdjsonGzWriter`."""
    with gzip.open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)


class PostFailed(ZhibanError):
    type_ = "telemetry-post-failed"
    status = 502
    title = "Posting telemetry failed"


class HttpPoster:
    """POSTs batches as gzip NDJSON with a bearer ingest key; retries 429, 5xx and transport errors."""

    def __init__(
        self,
        url: str,
        ingest_key: str,
        *,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 <= max_retries <= 10:
            raise InvalidInput("max_retries must be within [0, 10]")
        self.url = url
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout_s)
        self._headers = {
            "Authorization": f"Bearer {ingest_key}",
            "Content-Type": "application/x-ndjson",
            "Content-Encoding": "gzip",
        }
        self.posted = 0

    def post(self, batch: Sequence[dict[str, Any]]) -> int:
        """Send `batch` in chunks of at most 10,000 reports; returns how many were accepted."""
        for i in range(0, len(batch), MAX_BATCH_REPORTS):
            chunk = batch[i : i + MAX_BATCH_REPORTS]
            body = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in chunk), compresslevel=5)
            self._send(body)
            self.posted += len(chunk)
        return len(batch)

    def _send(self, body: bytes) -> None:
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._sleep(min(30.0, self.backoff_s * 2 ** (attempt - 1)))
            try:
                response = self._client.post(self.url, content=body, headers=self._headers)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return
            problem = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code != 429 and response.status_code < 500:
                break  # the server refused the batch itself: sending it again will not help
        raise PostFailed(f"POST {self.url} failed: {problem}")

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> HttpPoster:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass
class SimulationSummary:
    """What `simulate_to_file` produced."""

    path: Path
    truth_path: Path
    reports: int
    ticks: int
    seconds: float
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reports_per_s(self) -> float:
        return self.reports / self.seconds if self.seconds > 0 else 0.0


def simulate_to_file(
    out: Path,
    apps: Sequence[SimulatedApp],
    faults: Sequence[Fault] = (),
    *,
    seed: int = 0,
    start: datetime,
    duration: timedelta,
    tick: timedelta = timedelta(seconds=10),
    progress: bool = True,
) -> SimulationSummary:
    """Generate `duration` of traffic into `out` (NDJSON.gz) and its ground truth beside it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    if not timedelta(0) < duration <= timedelta(days=31):
        raise InvalidInput("duration must be positive and at most 31 days")
    sim = Simulator(apps, faults, seed=seed, start=start, tick=tick)
    ticks = int(duration / tick)
    began = time.perf_counter()
    with (
        NdjsonGzWriter(out) as writer,
        Progress(
            TextColumn("simulating"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} ticks · {task.fields[reports]:,} reports"),
            TimeRemainingColumn(),
            disable=not progress,
        ) as bar,
    ):
        task = bar.add_task("simulate", total=ticks, reports=0)
        for batch in sim.run(sim.start + ticks * tick):
            writer.write(batch)
            bar.update(task, advance=1, reports=writer.reports)
    truth = sim.truth()
    truth_file = truth_path(out)
    truth_file.write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
    return SimulationSummary(out, truth_file, writer.reports, ticks, time.perf_counter() - began, truth["events"])
