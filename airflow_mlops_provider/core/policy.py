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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

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

    def __post_init__(self) -> None:
        if not self.metrics:
            raise PolicyError("a promotion policy needs at least one metric rule")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise PolicyError(f"duplicate metric rules: {names}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromotionPolicy:
        if not isinstance(data, dict) or "metrics" not in data:
            raise PolicyError("policy must be an object with a 'metrics' list")
        rules = []
        for i, raw in enumerate(data["metrics"]):
            if not isinstance(raw, dict) or "name" not in raw:
                raise PolicyError(f"policy.metrics[{i}] must be an object with a 'name'")
            unknown = set(raw) - {"name", "direction", "floor", "max_regression", "min_improvement",
                                  "max_relative_regression"}
            if unknown:
                raise PolicyError(f"policy.metrics[{i}] ({raw['name']!r}) has unknown fields {sorted(unknown)}")
            rules.append(MetricRule(**raw))
        return cls(metrics=tuple(rules), min_eval_rows=int(data.get("min_eval_rows", 100)))

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": [asdict(m) for m in self.metrics], "min_eval_rows": self.min_eval_rows}

    def decide(self, challenger: dict[str, float], champion: dict[str, float] | None,
               eval_rows: int) -> Decision:
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
            check["passed"] = passed
            checks.append(check)
        verdict = "rejected" if reasons else "promote"
        if not reasons:
            reasons.append("no champion yet; all floors pass" if champion is None
                           else "all metrics within thresholds against the champion")
        return Decision(verdict=verdict, reasons=reasons, checks=checks, eval_rows=eval_rows,
                        had_champion=champion is not None)


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
