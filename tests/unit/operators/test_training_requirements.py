"""pin_requirements: bare names pinned to what is installed where the model is trained."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from airflow_mlops_provider.operators.training import pin_requirements


def test_bare_names_are_pinned_and_specifiers_kept():
    assert pin_requirements(["scikit-learn", "numpy>=1.26", "skops==0.1"]) == [
        f"scikit-learn=={version('scikit-learn')}", "numpy>=1.26", "skops==0.1"]


def test_a_package_that_is_not_installed_is_named():
    with pytest.raises(ValueError, match="'no-such-package-xyz' is not installed here"):
        pin_requirements(["no-such-package-xyz"])
