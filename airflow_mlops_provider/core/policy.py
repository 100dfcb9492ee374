"""PromotionPolicy: a declarative, JSON-serialisable champion/challenger gate.

Per metric: a direction (``higher`` or ``lower`` is better), an absolute floor the challenger
must reach, and a change threshold against the champion: the challenger is rejected when it is
worse than the champion by more than ``max_regression`` (absolute, in the metric's unit) — or,
with ``max_relative_regression``, by more than that share of the champion's value (for metrics
with a unit, such as RMSE), whichever allows more — or improves by less than
``min_improvement`` when that is set. A tie is not a regression, so with
the defaults a tie promotes the model trained on the newer data. With no champion, the floors
alone decide. Both models are judged on the same holdout rows: callers pass champion metrics
computed on the challenger's holdout.

Two further parts judge the evidence the gate gathers (``decide(..., evidence=...)``):

- **Significance** (``MetricRule.require_significant_improvement``): against a champion, the
  challenger's gain on that metric must be significant — the lower end of the paired bootstrap
  interval of the gain (:mod:`airflow_mlops_provider.core.bootstrap`, same holdout rows, the
  policy's ``bootstrap`` settings) must be above 0. A gain within noise is rejected, and the
  reason says so with the interval.
- **Slices** (``slices: {"min_rows": 50, "metrics": [rules]}``): every declared slice
  (:mod:`airflow_mlops_provider.core.slices`) with at least ``min_rows`` rows is judged by the
  rules (floor, ``max_regression`` / ``max_relative_regression`` against the champion on that
  slice); a rejection names the slice. Smaller slices are reported as not judged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from airflow_mlops_provider.core.bootstrap import BootstrapError, BootstrapSpec
from airflow_mlops_provider.core.tasks import DEFAULT_POLICIES

Direction = Literal["higher", "lower"]
# Metric values are floats: a difference within this of a threshold counts as on the threshold.
_EPS = 1e-9


class PolicyError(ValueError):
    """The policy itself is malformed; names the field."""


@dataclass(frozen=True)
class MetricRule:
    name: str
    direction: Direction = "higher"
    floor: float | None = None
    max_regression: float = 0.0
    min_improvement: float | None = None
    max_relative_regression: float | None = None
    require_significant_improvement: bool = False

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise PolicyError(f"metric {self.name!r}: direction must be 'higher' or 'lower', got {self.direction!r}")
        if self.max_regression < 0:
            raise PolicyError(f"metric {self.name!r}: max_regression must be >= 0, got {self.max_regression}")
        if self.max_relative_regression is not None and self.max_relative_regression < 0:
            raise PolicyError(f"metric {self.name!r}: max_relative_regression must be >= 0, "
                              f"got {self.max_relative_regression}")

    def allowed_regression(self, champion: float) -> float:
        """How much worse than ``champion`` the challenger may be, in the metric's unit."""
        relative = (self.max_relative_regression or 0.0) * abs(champion)
        return max(self.max_regression, relative)

    def better(self, delta: float) -> float:
        """Signed improvement: positive means the challenger is better."""
        return delta if self.direction == "higher" else -delta


@dataclass(frozen=True)
class PromotionPolicy:
    metrics: tuple[MetricRule, ...]
    min_eval_rows: int = 100
    bootstrap: BootstrapSpec = field(default_factory=BootstrapSpec)
    slices: SliceRules | None = None

    def __post_init__(self) -> None:
        if not self.metrics:
            raise PolicyError("a promotion policy needs at least one metric rule")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise PolicyError(f"duplicate metric rules: {names}")
        wants = [m.name for m in self.metrics if m.require_significant_improvement]
        if wants and not self.bootstrap.enabled:
            raise PolicyError(f"metrics {wants} require a significant improvement, but bootstrap.resamples is 0; "
                              "set bootstrap.resamples (e.g. 1000)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromotionPolicy:
        if not isinstance(data, dict) or "metrics" not in data:
            raise PolicyError("policy must be an object with a 'metrics' list")
        rules = []
        for i, raw in enumerate(data["metrics"]):
            rules.append(_rule(raw, f"policy.metrics[{i}]"))
        unknown = set(data) - {"metrics", "min_eval_rows", "bootstrap", "slices"}
        if unknown:
            raise PolicyError(f"policy has unknown fields {sorted(unknown)}; known: "
                              "['bootstrap', 'metrics', 'min_eval_rows', 'slices']")
        try:
            spec = BootstrapSpec.from_dict(data.get("bootstrap"))
        except BootstrapError as err:
            raise PolicyError(f"policy.{err}") from None
        return cls(metrics=tuple(rules), min_eval_rows=int(data.get("min_eval_rows", 100)), bootstrap=spec,
                   slices=SliceRules.from_dict(data["slices"]) if data.get("slices") is not None else None)

    def to_dict(self) -> dict[str, Any]:
        out = {"metrics": [asdict(m) for m in self.metrics], "min_eval_rows": self.min_eval_rows,
               "bootstrap": self.bootstrap.to_dict()}
        if self.slices is not None:
            out["slices"] = self.slices.to_dict()
        return out

    def decide(self, challenger: dict[str, float], champion: dict[str, float] | None,
               eval_rows: int, evidence: dict[str, Any] | None = None) -> Decision:
        """Judge the challenger. ``evidence``: the gate's bootstrap result (``gains``) and slice report
        (``slices``), when computed (:func:`airflow_mlops_provider.core.bootstrap.bootstrap`,
        :func:`airflow_mlops_provider.core.slices.slice_report`)."""
        evidence = evidence or {}
        gains = (evidence.get("bootstrap") or {}).get("gains") or {}
        notes: list[str] = []
        reasons: list[str] = []
        checks: list[dict[str, Any]] = []
        if eval_rows < self.min_eval_rows:
            reasons.append(f"holdout has {eval_rows} rows, fewer than min_eval_rows={self.min_eval_rows}")
        for rule in self.metrics:
            check: dict[str, Any] = {"metric": rule.name, "direction": rule.direction}
            value = challenger.get(rule.name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                reasons.append(f"challenger has no value for metric {rule.name!r}")
                check["passed"] = False
                checks.append(check)
                continue
            check["challenger"] = value
            passed = True
            if rule.floor is not None:
                ok = value >= rule.floor if rule.direction == "higher" else value <= rule.floor
                check["floor"] = rule.floor
                if not ok:
                    passed = False
                    cmp = "below" if rule.direction == "higher" else "above"
                    reasons.append(f"{rule.name}={value:.6g} is {cmp} the floor {rule.floor:.6g}")
            if champion is not None:
                base = champion.get(rule.name)
                if base is None or (isinstance(base, float) and math.isnan(base)):
                    passed = False
                    reasons.append(f"champion has no value for metric {rule.name!r} on this holdout")
                else:
                    gain = rule.better(value - base)
                    check.update(champion=base, improvement=gain)
                    allowed = rule.allowed_regression(base)
                    if gain < -allowed - _EPS:
                        passed = False
                        limit = (f"max_regression={rule.max_regression:.6g}" if allowed == rule.max_regression
                                 else f"max_relative_regression={rule.max_relative_regression:.6g} "
                                      f"({allowed:.6g})")
                        reasons.append(
                            f"{rule.name}: challenger {value:.6g} is worse than champion {base:.6g} by "
                            f"{-gain:.6g}, more than {limit}")
                    elif rule.min_improvement is not None and gain < rule.min_improvement - _EPS:
                        passed = False
                        reasons.append(
                            f"{rule.name}: improvement {gain:.6g} over champion {base:.6g} is below "
                            f"min_improvement={rule.min_improvement:.6g}")
                    if rule.require_significant_improvement:
                        ok, text = self._significance(rule, gain, base, gains.get(rule.name))
                        check["significant"] = ok
                        if not ok:
                            passed = False
                            reasons.append(text)
                        else:
                            notes.append(text)
            check["passed"] = passed
            checks.append(check)
        if self.slices is not None:
            slice_checks, slice_reasons = self.slices.judge(evidence.get("slices") or [], champion is not None)
            checks.extend(slice_checks)
            reasons.extend(slice_reasons)
        verdict = "rejected" if reasons else "promote"
        if not reasons:
            reasons.append("no champion yet; all floors pass" if champion is None
                           else "all metrics within thresholds against the champion")
            reasons.extend(notes)
        return Decision(verdict=verdict, reasons=reasons, checks=checks, eval_rows=eval_rows,
                        had_champion=champion is not None)

    def _significance(self, rule: MetricRule, gain: float, base: float,
                      interval: dict[str, Any] | None) -> tuple[bool, str]:
        spec = self.bootstrap
        how = f"{spec.confidence:.0%} paired-bootstrap interval ({spec.resamples} resamples, seed {spec.seed})"
        if not interval or interval.get("low") is None:
            return False, (f"{rule.name}: require_significant_improvement is set but no paired bootstrap of the "
                           "gain was computed on this holdout")
        low, high = interval["low"], interval["high"]
        if low > 0:
            return True, (f"{rule.name}: improvement {gain:.6g} over champion {base:.6g} is significant: "
                          f"{how} of the gain is [{low:.4g}, {high:.4g}], above 0")
        return False, (f"{rule.name}: improvement {gain:.6g} over champion {base:.6g} is within noise: "
                       f"{how} of the gain is [{low:.4g}, {high:.4g}], which includes 0 "
                       "(require_significant_improvement)")


_RULE_FIELDS = {"name", "direction", "floor", "max_regression", "min_improvement", "max_relative_regression",
                "require_significant_improvement"}


def _rule(raw: Any, where: str) -> MetricRule:
    if not isinstance(raw, dict) or "name" not in raw:
        raise PolicyError(f"{where} must be an object with a 'name'")
    unknown = set(raw) - _RULE_FIELDS
    if unknown:
        raise PolicyError(f"{where} ({raw['name']!r}) has unknown fields {sorted(unknown)}")
    return MetricRule(**raw)


@dataclass(frozen=True)
class SliceRules:
    """How slices are judged: ``metrics`` rules (floor, max regression against the champion on the
    slice; significance and ``min_improvement`` are not used per slice) for slices of at least
    ``min_rows`` rows."""

    metrics: tuple[MetricRule, ...]
    min_rows: int = 50

    @classmethod
    def from_dict(cls, data: Any) -> SliceRules:
        if not isinstance(data, dict) or not isinstance(data.get("metrics"), list) or not data["metrics"]:
            raise PolicyError("policy.slices must be an object with a non-empty 'metrics' list")
        unknown = set(data) - {"metrics", "min_rows"}
        if unknown:
            raise PolicyError(f"policy.slices has unknown fields {sorted(unknown)}; known: ['metrics', 'min_rows']")
        min_rows = data.get("min_rows", 50)
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
            raise PolicyError(f"policy.slices.min_rows must be a positive integer, got {min_rows!r}")
        return cls(metrics=tuple(_rule(r, f"policy.slices.metrics[{i}]") for i, r in enumerate(data["metrics"])),
                   min_rows=min_rows)

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": [asdict(m) for m in self.metrics], "min_rows": self.min_rows}

    def judge(self, report: list[dict[str, Any]], has_champion: bool) -> tuple[list[dict[str, Any]], list[str]]:
        checks: list[dict[str, Any]] = []
        reasons: list[str] = []
        for item in report:
            name, rows = item["slice"], int(item.get("rows", 0))
            mine = (item.get("metrics") or {}).get("challenger") or {}
            theirs = (item.get("metrics") or {}).get("champion") if has_champion else None
            for rule in self.metrics:
                check: dict[str, Any] = {"slice": name, "rows": rows, "metric": rule.name,
                                         "direction": rule.direction}
                value = mine.get(rule.name)
                if rows < self.min_rows:
                    check.update(judged=False, passed=True,
                                 note=f"{rows} rows, fewer than slices.min_rows={self.min_rows}: reported, not judged")
                    checks.append(check)
                    continue
                if value is None or math.isnan(value):
                    check.update(judged=False, passed=True, note=f"{rule.name} is undefined on this slice")
                    checks.append(check)
                    continue
                check.update(judged=True, challenger=value)
                passed = True
                where = f"slice {name} ({rows} rows)"
                if rule.floor is not None:
                    check["floor"] = rule.floor
                    ok = value >= rule.floor if rule.direction == "higher" else value <= rule.floor
                    if not ok:
                        passed = False
                        cmp = "below" if rule.direction == "higher" else "above"
                        reasons.append(f"{where}: {rule.name}={value:.6g} is {cmp} the floor {rule.floor:.6g}")
                base = (theirs or {}).get(rule.name)
                if base is not None and not math.isnan(base):
                    gain = rule.better(value - base)
                    allowed = rule.allowed_regression(base)
                    check.update(champion=base, improvement=gain)
                    if gain < -allowed - _EPS:
                        passed = False
                        limit = (f"max_regression={rule.max_regression:.6g}" if allowed == rule.max_regression
                                 else f"max_relative_regression={rule.max_relative_regression:.6g} ({allowed:.6g})")
                        reasons.append(f"{where}: {rule.name} challenger {value:.6g} is worse than champion "
                                       f"{base:.6g} by {-gain:.6g}, more than {limit}")
                check["passed"] = passed
                checks.append(check)
        return checks, reasons


@dataclass
class Decision:
    verdict: Literal["promote", "rejected"]
    reasons: list[str]
    checks: list[dict[str, Any]] = field(default_factory=list)
    eval_rows: int = 0
    had_champion: bool = False

    @property
    def promote(self) -> bool:
        return self.verdict == "promote"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The binary default; every task type has its own: core.tasks.default_policy(task_type).
DEFAULT_POLICY = DEFAULT_POLICIES["binary"]
