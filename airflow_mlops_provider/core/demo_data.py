"""A seeded card-transaction fraud data set for the demo and the tests.

``generate(kind=...)`` makes a realistic table: amounts, merchant categories, time of day,
distance from home, velocity features and a fraud label drawn from a known logistic model, so
a good classifier reaches an AUC around 0.9. Kinds: ``normal`` (a new daily version),
``drifted`` (amounts, channel mix and hours shift), ``noisy`` (a third of the labels flipped:
any model trained on it is worse) and ``corrupt`` (nulls, negative amounts, impossible hours,
duplicate ids: validation must refuse it).
"""

from __future__ import annotations

from typing import Any

CATEGORIES = ["grocery", "restaurants", "fuel", "online_retail", "electronics", "travel", "gaming"]
FEATURES = ["amount", "hour", "merchant_category", "distance_km", "tx_count_24h",
            "avg_amount_30d", "card_age_days", "is_online", "customer_age"]
TARGET = "is_fraud"
ID_COLUMN = "transaction_id"
KINDS = ("normal", "drifted", "noisy", "corrupt")


def generate(n_rows: int = 4000, seed: int = 0, kind: str = "normal") -> Any:
    """Return a pandas DataFrame with ``transaction_id``, the features and ``is_fraud``."""
    import numpy as np
    import pandas as pd

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    drift = kind == "drifted"
    cat_p = np.array([0.3, 0.2, 0.15, 0.15, 0.08, 0.07, 0.05])
    if drift:
        cat_p = np.array([0.1, 0.1, 0.05, 0.35, 0.2, 0.05, 0.15])
    category = rng.choice(CATEGORIES, size=n_rows, p=cat_p / cat_p.sum())
    amount = rng.lognormal(mean=3.6 + (0.7 if drift else 0.0), sigma=1.0, size=n_rows)
    hour = (rng.normal(14 + (5 if drift else 0), 5, n_rows).round() % 24).astype("int64")
    distance = rng.exponential(15 if not drift else 60, n_rows)
    tx24 = rng.poisson(3 if not drift else 6, n_rows).astype("int64")
    avg30 = amount * rng.lognormal(0, 0.5, n_rows)
    card_age = rng.integers(1, 3650, n_rows).astype("int64")
    is_online = (rng.random(n_rows) < (0.35 if not drift else 0.75)).astype("int64")
    cust_age = rng.integers(18, 90, n_rows).astype("int64")

    risky = np.isin(category, ["electronics", "gaming", "online_retail", "travel"]).astype(float)
    night = ((hour <= 5) | (hour >= 23)).astype(float)
    logit = (-6.0 + 2.2 * np.log(amount / np.maximum(avg30, 1)) + 1.6 * risky + 2.2 * night
             + 0.03 * np.minimum(distance, 200) + 0.35 * tx24 - 0.0005 * card_age + 0.9 * is_online)
    fraud = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    if kind == "noisy":
        flip = rng.random(n_rows) < 0.35
        fraud = np.where(flip, 1 - fraud, fraud)

    frame = pd.DataFrame({
        ID_COLUMN: [f"tx-{seed:04d}-{i:07d}" for i in range(n_rows)],
        "amount": amount.round(2),
        "hour": hour,
        "merchant_category": category,
        "distance_km": distance.round(3),
        "tx_count_24h": tx24,
        "avg_amount_30d": avg30.round(2),
        "card_age_days": card_age,
        "is_online": is_online,
        "customer_age": cust_age,
        TARGET: fraud,
    })
    if kind == "corrupt":
        bad = rng.choice(n_rows, size=max(1, n_rows // 20), replace=False)
        frame.loc[bad[: len(bad) // 3], "amount"] = np.nan
        frame.loc[bad[len(bad) // 3: 2 * len(bad) // 3], "amount"] = -frame.loc[
            bad[len(bad) // 3: 2 * len(bad) // 3], "amount"].abs()
        frame.loc[bad[2 * len(bad) // 3:], "hour"] = 99
        frame.loc[1, ID_COLUMN] = frame.loc[0, ID_COLUMN]
    return frame
