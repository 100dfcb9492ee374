"""Seeded data for the examples: a multiclass, a regression and a count table, normal or drifted.

Not a DAG file; the examples' DAG files and the tests import it (Airflow puts the DAG folder on
``sys.path``).
"""

from __future__ import annotations

from typing import Any

SPECIES = ["adelie", "chinstrap", "gentoo"]
ISLANDS = ["biscoe", "dream", "torgersen"]
REGIONS = ["north", "south", "east"]


def species_frame(n_rows: int = 1500, seed: int = 0, drifted: bool = False) -> Any:
    """Penguin-like measurements -> ``species`` (3 classes, string labels); id ``bird_id``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    species = rng.choice(SPECIES, size=n_rows, p=[0.45, 0.2, 0.35])
    centre = {"adelie": (38.8, 18.3, 190.0, 3700.0), "chinstrap": (48.8, 18.4, 196.0, 3730.0),
              "gentoo": (47.5, 15.0, 217.0, 5080.0)}
    means = np.array([centre[s] for s in species])
    spread = np.array([2.8, 1.2, 7.0, 450.0]) * (1.6 if drifted else 1.0)
    values = means + rng.normal(0, 1, (n_rows, 4)) * spread + (np.array([4.0, -1.5, 12.0, 600.0]) if drifted else 0)
    island = np.where(species == "gentoo", "biscoe", rng.choice(ISLANDS, size=n_rows))
    return pd.DataFrame({
        "bird_id": np.arange(n_rows, dtype="int64") + seed * 1_000_000,
        "bill_length_mm": values[:, 0], "bill_depth_mm": values[:, 1],
        "flipper_length_mm": values[:, 2], "body_mass_g": values[:, 3],
        "island": island, "species": species,
    })


def house_frame(n_rows: int = 3000, seed: int = 0, drifted: bool = False) -> Any:
    """House features -> ``price`` (thousands); id ``house_id``. Drift: bigger, newer, further out."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    area = rng.lognormal(4.6 + (0.35 if drifted else 0.0), 0.35, n_rows)
    rooms = np.clip(np.round(area / 25 + rng.normal(0, 1, n_rows)), 1, 12).astype("int64")
    age = rng.uniform(0, 60 if not drifted else 15, n_rows)
    distance = rng.exponential(8 if not drifted else 25, n_rows)
    price = 40 + 2.1 * area + 9 * rooms - 0.8 * age - 3.5 * np.sqrt(distance) + rng.normal(0, 18, n_rows)
    return pd.DataFrame({"house_id": np.arange(n_rows, dtype="int64") + seed * 1_000_000, "area_m2": area,
                         "rooms": rooms, "age_years": age, "distance_km": distance, "price": price})


def visits_frame(n_rows: int = 2000, seed: int = 0, drifted: bool = False) -> Any:
    """Store-day features -> ``visits`` (a count, Poisson); id ``store_day_id``. Drift: busier streets."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    footfall = rng.gamma(4.0, 250.0 * (1.8 if drifted else 1.0), n_rows)
    weekend = rng.integers(0, 2, n_rows)
    promo = (rng.random(n_rows) < 0.2).astype("int64")
    region = rng.choice(REGIONS, size=n_rows)
    effect = np.select([region == "north", region == "south"], [0.3, -0.2], 0.0)
    rate = np.exp(0.4 + 0.6 * weekend + 0.5 * promo + effect + 0.0006 * np.minimum(footfall, 3000))
    return pd.DataFrame({"store_day_id": np.arange(n_rows, dtype="int64") + seed * 1_000_000,
                         "footfall": footfall, "weekend": weekend, "promo": promo, "region": region,
                         "visits": rng.poisson(rate).astype("int64")})
