"""Extra link from a SageMaker deployment task to the endpoint's page in the AWS console."""

from __future__ import annotations

from typing import ClassVar

from airflow_mlops_provider.links.base import XComUriLink


class SageMakerEndpointLink(XComUriLink):
    """"SageMaker Endpoint": the endpoint this task deployed or rolled back, in the AWS console."""

    name: ClassVar[str] = "SageMaker Endpoint"
    key: ClassVar[str] = "sagemaker_endpoint_url"
