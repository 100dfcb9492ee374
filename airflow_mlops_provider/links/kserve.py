"""Extra link from a KServe deployment task to the InferenceService's URL."""

from __future__ import annotations

from typing import ClassVar

from airflow_mlops_provider.links.base import XComUriLink


class KServeInferenceServiceLink(XComUriLink):
    """"InferenceService": the URL KServe reports for the deployed InferenceService."""

    name: ClassVar[str] = "InferenceService"
    key: ClassVar[str] = "inference_service_url"
