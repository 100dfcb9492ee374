"""The provider's command line: ``init`` (pool, folders, allowed roots), ``doctor`` (what works),
``history`` (which version was live when, and why; two versions side by side) and ``webhook``
(MLflow reports alias moves to the api-server at once).

Two doors, one implementation (:mod:`airflow_mlops_provider.cli.commands`):

- the console script ``airflow-mlops init|doctor|history|webhook`` (:func:`main`);
- ``airflow mlops init|doctor|history|webhook`` through the provider's CLI hook (:func:`get_cli_commands`,
  listed under ``cli`` in the provider info).

Nothing heavy is imported here: Airflow builds its parser from this module on every ``airflow`` call.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

# (flags, keyword arguments of add_argument), shared by both doors.
INIT_ARGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--pool",), {"default": None, "help": "name of the 1-slot promotion pool (default: mlops_promotion, "
                                             "ModelConfig.promotion_pool)"}),
    (("--allowed-roots",), {"default": None, "help": "comma-separated folders / object-store URIs the tasks may "
                                                    "use besides MLOPS_HOME: checked, then printed as the "
                                                    "setting to give every Airflow component"}),
    (("--data-repo",), {"action": "store_true", "help": "also create the embedded git + DVC data repository "
                                                       "under MLOPS_HOME (when no dvc_default connection is used)"}),
]
DOCTOR_ARGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--pool",), INIT_ARGS[0][1]),
    (("--mlflow-conn-id",), {"default": "mlflow_default", "help": "MLflow connection to check"}),
    (("--dvc-conn-id",), {"default": "dvc_default", "help": "DVC connection to check"}),
    (("--storage-conn-id",), {"default": None, "help": "connection used to reach object-store allowed roots, "
                                                      "as the operators' conn_id (default: none, the store's "
                                                      "credentials from the environment)"}),
]

HISTORY_ARGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--model",), {"required": True, "help": "the registered model"}),
    (("--alias",), {"default": None, "help": "the alias asked about (default: champion)"}),
    (("--target",), {"default": None, "help": "a deploy target instead of an alias (local, kserve, ...)"}),
    (("--at",), {"default": None, "help": "ISO date or time, UTC unless it says otherwise (default: now)"}),
    (("--compare",), {"nargs": 2, "metavar": "VERSION", "default": None,
                      "help": "two versions side by side instead"}),
    (("--json",), {"action": "store_true", "help": "print the answer as JSON (what GET /mlops/api/history gives)"}),
    (("--mlflow-conn-id",), {"default": "mlflow_default", "help": "MLflow connection"}),
]

WEBHOOK_ARGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--url",), {"required": True, "help": "where MLflow's server reaches the api-server's receiver: "
                                            "<api-server URL>/mlops-webhooks/mlflow"}),
    (("--mlflow-conn-id",), {"default": "mlflow_default", "help": "MLflow connection (a tracking server: "
                                                                  "the embedded store sends no webhooks)"}),
]


def _add(parser: argparse.ArgumentParser, args: list[tuple[tuple[str, ...], dict[str, Any]]]) -> None:
    for flags, kwargs in args:
        parser.add_argument(*flags, **kwargs)


def build_parser(prog: str = "airflow-mlops") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Set up and check the MLOps provider in this Airflow.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add(sub.add_parser("init", help="create the promotion pool and the MLOPS_HOME folders; check allowed roots"),
         INIT_ARGS)
    _add(sub.add_parser("doctor", help="check connections, versions, the pool, the plugin and the allowed roots"),
         DOCTOR_ARGS)
    _add(sub.add_parser("history", help="which version an alias or deploy target served at a time, and why"),
         HISTORY_ARGS)
    _add(sub.add_parser("webhook", help="register the MLflow webhook that reports alias moves to the ledger"),
         WEBHOOK_ARGS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``airflow-mlops`` console script."""
    from airflow_mlops_provider.cli import commands

    args = build_parser().parse_args(argv)
    return {"init": commands.init_command, "doctor": commands.doctor_command,
            "history": commands.history_command, "webhook": commands.webhook_command}[args.command](args)


def get_cli_commands() -> list[Any]:
    """``airflow mlops init|doctor|history|webhook``: the provider's CLI hook (``cli`` in the provider info)."""
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

    def arguments(spec: list[tuple[tuple[str, ...], dict[str, Any]]]) -> tuple[Any, ...]:
        return tuple(Arg(flags, **kwargs) for flags, kwargs in spec)

    def exiting(name: str) -> Any:
        # Airflow ignores an action's return value: exit with the check's status instead.
        return lazy_load_command(f"airflow_mlops_provider.cli.commands.{name}_and_exit")

    return [GroupCommand(name="mlops", help="Set up and check the MLOps provider (init, doctor, history, webhook)",
                         subcommands=(
        ActionCommand(name="init", help="Create the promotion pool and the MLOPS_HOME folders; check allowed roots",
                      func=exiting("init"), args=arguments(INIT_ARGS)),
        ActionCommand(name="doctor", help="Check connections, versions, the pool, the plugin and the allowed roots",
                      func=exiting("doctor"), args=arguments(DOCTOR_ARGS)),
        ActionCommand(name="history", help="Which version an alias or deploy target served at a time, and why",
                      func=exiting("history"), args=arguments(HISTORY_ARGS)),
        ActionCommand(name="webhook", help="Register the MLflow webhook that reports alias moves to the ledger",
                      func=exiting("webhook"), args=arguments(WEBHOOK_ARGS)),
    ))]
