"""`usage-pipeline prices …` and `reprice`: arguments, output, and how they reach a worker."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import stream_app.cli as cli
from stream_app.cli import prices_cmd, reprice_cmd
from stream_app.core.pricing import CATALOG_SOURCE
from stream_app.errors import ConfigurationError, PipelineError
from stream_app.settings import load_settings

PRICE_FILE = """\
[[override]]
name = "acme-contract-gpt-4o"
provider = "openai"
model = "gpt-4o"
effective_from = 2026-01-01
input_mtok = "2"
cache_read_mtok = "0.5"
output_mtok = "8"

[[alias]]
provider = "azure"
model = "prod-gpt4o-eu"
catalog_model = "gpt-4o"
"""


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="usage-pipeline")
    commands = parser.add_subparsers(dest="command", required=True)
    prices_cmd.register(commands)
    reprice_cmd.register(commands)
    return parser.parse_args(argv)


def run(capsys, monkeypatch, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    args = parse(*argv)
    code = args.handler(args, load_settings())
    return code, capsys.readouterr().out


def test_the_commands_register_beside_the_others():
    assert {"stream_app.cli.prices_cmd", "stream_app.cli.reprice_cmd"} <= set(cli.COMMAND_MODULES)
    parser = cli.build_parser()

    args = parser.parse_args(["reprice", "--since", "2026-11-01", "--until", "2026-11-02", "--dry-run"])
    assert (args.handler, args.dry_run, args.project) == (reprice_cmd.run, True, None)
    assert parser.parse_args(["prices", "missing", "--since", "30d"]).handler == prices_cmd.run_missing


def test_reprice_needs_since_and_until(capsys):
    with pytest.raises(SystemExit):
        parse("reprice", "--since", "2026-11-01")
    assert "--until" in capsys.readouterr().err


def test_a_scope_that_ends_before_it_starts_is_refused():
    with pytest.raises(PipelineError, match="is not before --until"):
        prices_cmd.read_scope(parse("reprice", "--since", "2026-11-02", "--until", "2026-11-01"))


def test_prices_check_lists_what_the_file_says(capsys, monkeypatch, tmp_path: Path):
    path = tmp_path / "prices.toml"
    path.write_text(PRICE_FILE)

    code, out = run(capsys, monkeypatch, "prices", "check", str(path))

    assert code == 0
    assert out.startswith(f"{path}: OK, 1 overrides, 1 aliases\n")
    assert "override:prices.toml#acme-contract-gpt-4o  openai    gpt-4o  (all)    2026-01-01T00:00:00Z" in out
    assert "azure     prod-gpt4o-eu  azure/gpt-4o" in out


def test_prices_check_uses_the_setting_and_reports_problems(capsys, monkeypatch, tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text(PRICE_FILE.replace('input_mtok = "2"', "input_mtok = 2.0"))

    with pytest.raises(ConfigurationError, match=r"bad.toml line 6 \(\[\[override\]\] #1 'acme-contract-gpt-4o'\)"):
        run(capsys, monkeypatch, "prices", "check", env={"USAGE_PRICE_OVERRIDES_FILE": str(path)})


def test_prices_check_without_a_file_says_how_to_give_one(capsys, monkeypatch):
    monkeypatch.delenv("USAGE_PRICE_OVERRIDES_FILE", raising=False)
    with pytest.raises(PipelineError, match="set USAGE_PRICE_OVERRIDES_FILE"):
        run(capsys, monkeypatch, "prices", "check")


def test_prices_quote_says_how_a_call_is_priced(capsys, monkeypatch, tmp_path: Path):
    path = tmp_path / "prices.toml"
    path.write_text(PRICE_FILE)
    argv = ("prices", "quote", "--provider", "openai", "--model", "gpt-4o-2024-08-06", "--input", "1000", "--cache-read", "200", "--output", "100")

    _, before = run(capsys, monkeypatch, *argv, "--at", "2025-12-31T12:00:00Z", "--format", "json", env={"USAGE_PRICE_OVERRIDES_FILE": str(path)})
    _, after = run(capsys, monkeypatch, *argv, "--at", "2026-06-01")

    assert json.loads(before) == {
        "provider": "openai", "model": "gpt-4o-2024-08-06", "at": "2025-12-31T12:00:00Z", "cost_usd": "0.00325",
        "status": "priced", "source": CATALOG_SOURCE,
        "catalog_provider": "openai", "catalog_model": "gpt-4o", "detail": "",
    }
    assert "cost_usd          0.0025\n" in after
    assert "source            override:prices.toml#acme-contract-gpt-4o\n" in after


def test_prices_quote_refuses_impossible_usage(capsys, monkeypatch):
    with pytest.raises(PipelineError, match="cache read \\+ write <= input"):
        run(capsys, monkeypatch, "prices", "quote", "--provider", "openai", "--model", "gpt-4o", "--input", "1", "--cache-read", "2")


def test_render_table_csv_json():
    records = [
        {"model": "a", "events": 3, "cost_usd": "0.5", "detail": ""},
        {"model": "bb", "events": 12, "cost_usd": "10", "detail": "why"},
    ]
    columns = ("model", "events", "cost_usd", "detail")

    assert prices_cmd.render(records, columns, "table") == (
        "model  events  cost_usd  detail\n"
        "-----  ------  --------  ------\n"
        "a           3       0.5  -\n"
        "bb         12        10  why\n"
    )
    assert prices_cmd.render(records, columns, "csv") == "model,events,cost_usd,detail\na,3,0.5,\nbb,12,10,why\n"
    assert json.loads(prices_cmd.render(records, columns, "json")) == records
    assert prices_cmd.render([], columns, "table", empty="(nothing)") == "(nothing)\n"


def test_reprice_summary_text():
    record = {
        "dry_run": False, "project": "acme", "since": "2026-11-01T00:00:00Z", "until": "2026-11-02T00:00:00Z",
        "events": 10, "changed": 4, "cost_before": "1", "cost_after": "1.25", "difference": "0.25", "windows_recomputed": 3,
        "projects": [{"project_id": "acme", "events": 10, "changed": 4, "cost_before": "1", "cost_after": "1.25",
                      "difference": "0.25", "not_priced_before": 4, "not_priced_after": 0}],
    }

    text = reprice_cmd.render_summary(record)

    assert text.startswith(
        "events from 2026-11-01T00:00:00Z until 2026-11-02T00:00:00Z of project acme: 10 examined, 4 changed; "
        "cost 1 -> 1.25 (difference 0.25)\nwindows recomputed: 3\n\nproject_id  events  changed"
    )


# --- reaching a worker ----------------------------------------------------------------------------


class _Worker(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, object]] = {}
    seen: list[tuple[str, str, bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append((self.command, self.path, self.rfile.read(length)))
        status, body = self.answers.get(self.path.split("?")[0], (404, {"error": "not found"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def worker() -> Iterator[tuple[str, type[_Worker]]]:
    _Worker.answers, _Worker.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Worker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Worker
    server.shutdown()
    server.server_close()


def test_call_worker_gets_json(worker):
    url, handler = worker
    handler.answers["/prices/missing"] = (200, [{"model": "x"}])

    assert prices_cmd.call_worker(url, "/prices/missing", params={"since": "2026-11-01T00:00:00+00:00"}) == [{"model": "x"}]
    assert handler.seen == [("GET", "/prices/missing?since=2026-11-01T00%3A00%3A00%2B00%3A00", b"")]


def test_call_worker_posts_a_json_body(worker):
    url, handler = worker
    handler.answers["/reprice"] = (200, {"changed": 0})

    assert prices_cmd.call_worker(url, "/reprice", body={"dry_run": True}) == {"changed": 0}
    assert handler.seen == [("POST", "/reprice", b'{"dry_run": true}')]


def test_a_worker_refusal_is_an_error_with_its_reason(worker):
    url, handler = worker
    handler.answers["/reprice"] = (400, {"error": "price file prices.toml has 1 problem(s)"})

    with pytest.raises(PipelineError, match="refused /reprice: price file prices.toml has 1 problem"):
        prices_cmd.call_worker(url, "/reprice", body={})
    with pytest.raises(PipelineError, match="no such page .* restart it"):
        prices_cmd.call_worker(url, "/prices/compare")


def test_a_worker_that_does_not_answer_is_an_error():
    with pytest.raises(PipelineError, match="did not answer"):
        prices_cmd.call_worker("http://127.0.0.1:9", "/prices/missing", timeout=2)


def test_an_embedded_store_that_does_not_exist_yet(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("CLICKHOUSE_URL", f"chdb://{tmp_path / 'nothing'}")

    with pytest.raises(PipelineError, match="no data yet"):
        prices_cmd.from_worker_or_store(load_settings(), lambda url: None, lambda sink: None)
