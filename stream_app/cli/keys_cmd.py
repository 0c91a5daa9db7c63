"""`usage-pipeline keys create|list|revoke`: the API keys of `ingest-http` (SPEC.md §5).

Keys live in USAGE_INGEST_KEYS_FILE (default <USAGE_PIPELINE_HOME>/ingest-keys.json) as
hashes; `create` prints the key itself once, on stdout alone, so
`KEY=$(usage-pipeline keys create --project P)` works. A running `ingest-http` sees a
created or revoked key at its next request.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from stream_app.settings import PipelineSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `keys` and its actions to the command tree."""
    parser = subparsers.add_parser(
        "keys",
        help="manage the API keys of ingest-http (each bound to the projects it may write)",
        description="API keys for `usage-pipeline ingest-http`. Only a SHA-256 of each key is stored.",
    )
    actions = parser.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="make a key for one or more projects; prints it once",
        description="Make a new random key (256 bits) allowed to write events of the given projects. "
        "The key is printed once and cannot be shown again: store it in the service's secret store.",
    )
    create.add_argument("--project", action="append", required=True, metavar="P", help="a project_id (repeatable)")
    create.set_defaults(handler=run_create)
    listing = actions.add_parser("list", help="the keys: id, projects, created, revoked (never the key)")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=run_list)
    revoke = actions.add_parser("revoke", help="revoke a key by its id (from `keys list`)")
    revoke.add_argument("key_id", metavar="ID")
    revoke.set_defaults(handler=run_revoke)


def run_create(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from stream_app.ingest.keys import KeyFile

    key_file = KeyFile(settings.resolved_ingest_keys_file)
    made = key_file.create(args.project, now=datetime.now(timezone.utc))
    print(
        f"created key {made.stored.key_id} for {', '.join(made.stored.projects)} in {key_file.path}; "
        "it is shown once, below: keep it in a secret store",
        file=sys.stderr,
    )
    print(made.key, flush=True)
    return 0


def run_list(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from stream_app.ingest.keys import KeyFile

    keys = list(KeyFile(settings.resolved_ingest_keys_file).keys().values())
    if args.format == "json":
        records = [
            {"id": k.key_id, "projects": list(k.projects), "created_at": k.created_at, "revoked_at": k.revoked_at}
            for k in keys
        ]
        print(json.dumps(records, indent=2))
        return 0
    if not keys:
        print(f"(no keys in {settings.resolved_ingest_keys_file})")
        return 0
    print(f"{'ID':<9} {'STATUS':<8} {'CREATED':<26} PROJECTS")
    for key in keys:
        status = "active" if key.active else "revoked"
        print(f"{key.key_id:<9} {status:<8} {key.created_at:<26} {','.join(key.projects)}")
    return 0


def run_revoke(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from stream_app.ingest.keys import KeyFile

    stored = KeyFile(settings.resolved_ingest_keys_file).revoke(args.key_id, now=datetime.now(timezone.utc))
    print(f"key {stored.key_id} revoked at {stored.revoked_at} (projects {', '.join(stored.projects)})")
    return 0
