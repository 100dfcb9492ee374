"""The release checks of a deployment lane: a load policy and a quality canary (docs/release.md).

Every deploy target's config (the ``local`` / ``kserve`` / ``sagemaker`` Param of a retrain DAG)
carries these keys; this is the policy a team would set for its fraud model, e.g.
``airflow dags trigger mlops_retrain --conf '{"deploy_target": "local", "local": RELEASE_CHECKS}'``.
"""

RELEASE_CHECKS = {
    # Load test, against the candidate only, before traffic moves: 4 requests in flight, at most
    # 400 requests or 60 s (whichever comes first), one holdout row per request.
    "load_concurrency": 4,
    "load_requests": 400,
    "load_duration_s": 60,
    "load_rows": 1,
    "load_max_p95_ms": 500,
    "load_max_p99_ms": 1000,
    "load_max_error_rate": 0.01,
    "load_min_rps": 10,
    # Quality canary: the same 200 holdout rows to candidate and @champion.
    "canary_rows": 200,
    "canary_min_agreement": 0.97,
    "canary_max_psi": 0.1,
    "canary_max_ks": 0.1,
    "canary_max_mean_abs_diff": 0.05,
    "canary_threshold": 0.5,
}
