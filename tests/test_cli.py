"""The ``resultsfs`` command, run for real as a subprocess: every command, its output (text, and
``--json`` read by the real ``jq``), its exit status, and the hint each error carries.

Every error a user can cause is one line, ``Error: ...``. Each test is bounded in time and
leaves no mount and no process behind.
"""

from __future__ import annotations

import errno
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from models import Counter, Metrics
from mounting import MODELS, RESULTSFS, mounted, wait_until, write_errno
from pgserver import PostgresServer
from resultsfs import FileBackend, ResultStore

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
#: What the environment of every command starts from: no store or models named by the test runner's.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("RESULTSFS_STORE", "RESULTSFS_MODELS")}


def run(
    *args: str,
    stdin: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``resultsfs ARGS...`` in a new process (``env`` adds to a clean environment)."""
    done = subprocess.run(
        [*RESULTSFS, *args],
        input=stdin.decode() if isinstance(stdin, bytes) else stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**CLEAN_ENV, **(env or {})},
        cwd=cwd,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"resultsfs {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


def jq(document: str, program: str, *options: str) -> str:
    """The real jq's output for ``program`` applied to ``document``."""
    done = subprocess.run(
        ["jq", *options, program], input=document, capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def one_error(done: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The one ``Error: ...`` line of a command that failed with ``status``; fails otherwise."""
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.startswith("Error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


def data(value: float = 0.5, accuracy: float = 0.9) -> str:
    return json.dumps({"loss": value, "accuracy": accuracy})


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A directory store with three results."""
    path = tmp_path / "store"
    opened = ResultStore(path)
    opened.set("sweep3/lr0.1/seed7", Metrics(loss=0.5, accuracy=0.9, step=7))
    opened.set("sweep3/lr0.1/seed8", Metrics(loss=0.4, accuracy=0.8, step=8))
    opened.set("top", Counter(writer="api", value=1))
    return path


@pytest.fixture
def env(store: Path) -> dict[str, str]:
    """The store and models named through the environment, as a shell user would set them."""
    return {"RESULTSFS_STORE": str(store), "RESULTSFS_MODELS": MODELS}


class TestNamingTheStore:
    def test_without_a_store_the_one_line_error_says_how_to_name_one(self) -> None:
        for command in (["ls"], ["get", "x"], ["locks"], ["check"], ["rm", "x"], ["init"]):
            error = one_error(run(*command, check=False), status=2)
            assert "--store" in error and "RESULTSFS_STORE" in error, error

    def test_the_store_is_taken_from_the_option_before_or_after_the_command_or_the_environment(
        self, store: Path, tmp_path: Path
    ) -> None:
        other = tmp_path / "other"
        ResultStore(other).set("elsewhere", Counter(writer="o", value=1))
        assert run("ls", "--store", str(store)).stdout == "sweep3/\ntop\n"
        assert run("ls", "-s", str(store)).stdout == "sweep3/\ntop\n"
        assert run("-s", str(store), "ls").stdout == "sweep3/\ntop\n"
        assert run("ls", env={"RESULTSFS_STORE": str(store)}).stdout == "sweep3/\ntop\n"
        # The command's own --store wins over the group's, which wins over the environment.
        assert run("-s", str(store), "ls", "-s", str(other)).stdout == "elsewhere\n"
        assert run("-s", str(other), "ls", env={"RESULTSFS_STORE": str(store)}).stdout == "elsewhere\n"

    def test_a_missing_store_is_an_error_that_suggests_init(self, tmp_path: Path) -> None:
        error = one_error(run("ls", "-s", str(tmp_path / "nothing"), check=False))
        assert f"store {tmp_path / 'nothing'} does not exist" in error and "resultsfs init" in error
        assert not (tmp_path / "nothing").exists()

    def test_init_creates_a_directory_store_once_and_says_so(self, tmp_path: Path) -> None:
        path = tmp_path / "new" / "results"
        assert run("init", "-s", str(path)).stdout == f"created directory store {path}\n"
        assert path.is_dir()
        assert run("init", "-s", str(path)).stdout == f"{path}: already a directory store; nothing changed\n"
        again = run("init", "-s", str(path), "--json").stdout
        assert jq(again, "[.store, .kind, .created]", "-c") == f'["{path}","directory",false]\n'
        assert run("ls", "-s", str(path)).stdout == ""

    def test_init_creates_an_sqlite_store(self, tmp_path: Path) -> None:
        url = f"sqlite://{tmp_path}/r.db"
        made = run("init", "-s", url, "--json").stdout
        assert jq(made, ".kind, .created", "-c") == '"sqlite"\ntrue\n'
        assert (tmp_path / "r.db").is_file()
        assert jq(run("init", "-s", url, "--json").stdout, ".created") == "false\n"

    def test_init_makes_the_tables_of_a_postgresql_database(self, postgres: PostgresServer) -> None:
        url = postgres.url()
        made = run("init", "-s", url)
        assert made.stdout.endswith("postgresql store ready (its tables created where they were missing)\n")
        assert jq(run("init", "-s", url, "--json").stdout, ".kind, .created", "-c") == '"postgresql"\nnull\n'
        run("put", "-s", url, "--models", MODELS, "--model", "default:Metrics", "pg/r", stdin=data(0.25))
        assert jq(run("get", "-s", url, "--models", MODELS, "pg/r").stdout, ".loss") == "0.25\n"
        assert run("ls", "-r", "-s", url).stdout == "pg/r\n"


class TestGetAndPut:
    def test_put_bare_data_from_stdin_with_model_into_a_plain_directory(self, env: dict[str, str]) -> None:
        done = run("put", "--model", "default:Metrics", "eval/z", stdin=data(0.25), env=env)
        assert done.stdout == "eval/z: stored\n"
        got = run("get", "eval/z", env=env).stdout
        assert json.loads(got) == {"loss": 0.25, "accuracy": 0.9, "step": 0, "when": None, "inner": None}
        assert jq(got, ".loss") == "0.25\n"

    def test_get_envelope_prints_the_stored_bytes_exactly(self, env: dict[str, str], store: Path) -> None:
        done = subprocess.run(
            [*RESULTSFS, "get", "--envelope", "sweep3/lr0.1/seed7"],
            capture_output=True, env={**CLEAN_ENV, **env}, timeout=60, check=True,
        )  # fmt: skip
        assert done.stdout == (store / "sweep3/lr0.1/seed7.json").read_bytes()
        assert jq(done.stdout.decode(), ".model_type, .data.step", "-r") == "Metrics\n7\n"

    def test_put_reads_a_file_or_dash_and_prints_json(self, env: dict[str, str], tmp_path: Path) -> None:
        source = tmp_path / "run.json"
        source.write_text(
            json.dumps({"model_type": "Counter", "namespace": "default", "data": {"writer": "f", "value": 2}})
        )
        assert run("put", "from/file", str(source), env=env).stdout == "from/file: stored\n"
        out = run("put", "from/dash", "-", "--json", stdin=source.read_text(), env=env).stdout
        assert jq(out, "[.id, .stored]", "-c") == '["from/dash",true]\n'
        skipped = run("put", "from/dash", "--on-exists", "skip", "--json", stdin=source.read_text(), env=env)
        assert jq(skipped.stdout, ".stored") == "false\n"
        assert ResultStore(env["RESULTSFS_STORE"]).get("from/file") == Counter(writer="f", value=2)

    def test_put_from_a_terminal_says_how_to_end_the_input(self, env: dict[str, str]) -> None:
        parent, child = pty.openpty()
        try:
            process = subprocess.Popen(
                [*RESULTSFS, "put", "--model", "default:Metrics", "typed"],
                stdin=child, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**CLEAN_ENV, **env},
            )  # fmt: skip
            os.write(parent, data(0.5).encode() + b"\n\x04")
            out, err = process.communicate(timeout=60)
        finally:
            os.close(child)
            os.close(parent)
        assert out == "typed: stored\n" and "end it with Ctrl-D" in err

    def test_put_bare_data_into_a_bound_directory_needs_no_model(self, env: dict[str, str]) -> None:
        assert run("bind", "evals", "default:Metrics", env=env).stdout == "evals: bound to default:Metrics\n"
        assert subprocess.run(
            f"printf '%s' '{data(0.125)}' | {' '.join(RESULTSFS)} put evals/deep/r1",
            shell=True, env={**CLEAN_ENV, **env}, capture_output=True, text=True, timeout=60,
        ).returncode == 0  # fmt: skip
        assert ResultStore(env["RESULTSFS_STORE"]).get("evals/deep/r1") == Metrics(loss=0.125, accuracy=0.9)

    def test_bare_data_without_a_model_names_the_ways_to_give_one(self, env: dict[str, str]) -> None:
        error = one_error(run("put", "loose/r", stdin=data(), env=env, check=False))
        assert "names no model" in error and "resultsfs bind" in error and "--model NAMESPACE:Model" in error

    def test_merge_changes_only_the_fields_given(self, env: dict[str, str]) -> None:
        done = run("put", "--merge", "sweep3/lr0.1/seed7", stdin='{"loss": 0.1}', env=env)
        assert done.stdout == "sweep3/lr0.1/seed7: stored\n"
        got = json.loads(run("get", "sweep3/lr0.1/seed7", env=env).stdout)
        assert (got["loss"], got["accuracy"], got["step"]) == (0.1, 0.9, 7)
        run(
            "put", "--merge", "sweep3/lr0.1/seed7", stdin='{"step": null}', env=env
        )  # null: back to the default
        assert json.loads(run("get", "sweep3/lr0.1/seed7", env=env).stdout)["step"] == 0

    def test_bare_data_that_would_lose_a_field_is_refused_and_points_to_merge(
        self, env: dict[str, str]
    ) -> None:
        error = one_error(
            run(
                "put", "sweep3/lr0.1/seed7", "--on-exists", "overwrite", stdin=data(0.3), env=env, check=False
            )
        )
        assert "leaves out 'step'" in error and "--merge" in error

    def test_already_stored_suggests_on_exists_overwrite(self, env: dict[str, str]) -> None:
        args = ("put", "--model", "default:Metrics", "sweep3/lr0.1/seed8")
        error = one_error(run(*args, stdin=data(0.3), env=env, check=False))
        assert "already stored under ID 'sweep3/lr0.1/seed8'" in error and "--on-exists overwrite" in error
        # Bare data that leaves out a stored field would reset it: refused, even with overwrite.
        error = one_error(run(*args, "--on-exists", "overwrite", stdin=data(0.3), env=env, check=False))
        assert "leaves out 'step' (stored 8, would become 0)" in error and "--merge" in error
        every_field = json.dumps({"loss": 0.3, "accuracy": 0.9, "step": 8})
        assert run(*args, "--on-exists", "overwrite", stdin=every_field, env=env).stdout.endswith(
            ": stored\n"
        )
        assert ResultStore(env["RESULTSFS_STORE"]).get("sweep3/lr0.1/seed8") == Metrics(
            loss=0.3, accuracy=0.9, step=8
        )

    def test_model_and_envelope_must_agree(self, env: dict[str, str]) -> None:
        envelope = json.dumps(
            {"model_type": "Counter", "namespace": "default", "data": {"writer": "a", "value": 1}}
        )
        error = one_error(run("put", "--model", "default:Metrics", "x", stdin=envelope, env=env, check=False))
        assert "the input is a default:Counter envelope, not default:Metrics (the model named)" in error

    def test_an_unregistered_model_points_to_models(self, store: Path) -> None:
        error = one_error(run("get", "-s", str(store), "top", check=False))
        assert "'Counter' is not registered" in error and "--models (or RESULTSFS_MODELS)" in error
        error = one_error(
            run("put", "-s", str(store), "--model", "default:Metrics", "x", stdin=data(), check=False)
        )
        assert "'default:Metrics' is not registered" in error and "--models" in error
        assert json.loads(run("get", "-s", str(store), "--models", MODELS, "top").stdout)["writer"] == "api"
        assert (
            json.loads(run("get", "-s", str(store), "top", env={"RESULTSFS_MODELS": MODELS}).stdout)["value"]
            == 1
        )

    def test_an_id_written_as_a_file_name_gets_did_you_mean(self, env: dict[str, str]) -> None:
        error = one_error(run("get", "sweep3/lr0.1/seed7.json", env=env, check=False))
        assert "no result found for ID 'sweep3/lr0.1/seed7.json'" in error
        assert error.count("did you mean 'sweep3/lr0.1/seed7'?") == 1, error
        error = one_error(run("rm", "top.json", env=env, check=False))
        assert error.count("did you mean 'top'?") == 1, error
        put = run("put", "--model", "default:Metrics", "eval/z.json", stdin=data(), env=env)
        assert "did you mean 'eval/z'?" in put.stderr and put.stderr.startswith("resultsfs: note: ")
        quiet = run("-q", "put", "--model", "default:Metrics", "eval/y.json", stdin=data(), env=env)
        assert quiet.stderr == "" and quiet.stdout == "eval/y.json: stored\n"

    def test_errors_are_one_line_for_invalid_ids_and_data(self, env: dict[str, str]) -> None:
        assert "invalid result ID '../x'" in one_error(run("get", "../x", env=env, check=False))
        invalid = one_error(
            run("put", "--model", "default:Metrics", "r", stdin='{"loss": "x"}', env=env, check=False)
        )
        assert "data does not validate as Metrics" in invalid
        assert "invalid JSON" in one_error(run("put", "r", stdin="garbage", env=env, check=False))

    def test_usage_errors_exit_2(self, env: dict[str, str]) -> None:
        assert run("put", "--on-exists", "sometimes", "r", env=env, check=False).returncode == 2
        assert run("nonsense", check=False).returncode == 2


class TestLs:
    def test_one_level_like_ls_with_directories_marked(self, env: dict[str, str]) -> None:
        assert run("ls", env=env).stdout == "sweep3/\ntop\n"
        assert run("ls", "sweep3", env=env).stdout == "sweep3/lr0.1/\n"
        assert run("ls", "sweep3/lr0.1/", env=env).stdout == "sweep3/lr0.1/seed7\nsweep3/lr0.1/seed8\n"
        assert run("ls", "top", env=env).stdout == "top\n"  # a result, as ls(1) shows a file

    def test_recursive_lists_every_id_below(self, env: dict[str, str]) -> None:
        assert run("ls", "-r", env=env).stdout == "sweep3/lr0.1/seed7\nsweep3/lr0.1/seed8\ntop\n"
        assert run("ls", "-r", "sweep3", env=env).stdout == "sweep3/lr0.1/seed7\nsweep3/lr0.1/seed8\n"
        assert run("ls", "--recursive", "sweep", env=env, check=False).returncode == 1  # never sweep3/...

    def test_nothing_there_is_an_error(self, env: dict[str, str]) -> None:
        assert "nothing is stored under 'nope'" in one_error(run("ls", "nope", env=env, check=False))
        assert "did you mean 'top'?" in one_error(run("ls", "top.json", env=env, check=False))

    def test_json_is_read_by_jq(self, env: dict[str, str]) -> None:
        out = run("ls", "--json", env=env).stdout
        assert jq(out, '.[] | "\\(.type) \\(.id)"', "-r") == "directory sweep3\nresult top\n"
        out = run("ls", "-r", "--json", env=env).stdout
        assert jq(out, ".[].id", "-r") == "sweep3/lr0.1/seed7\nsweep3/lr0.1/seed8\ntop\n"

    def test_long_shows_model_size_time_and_lease(self, env: dict[str, str], store: Path) -> None:
        ResultStore(store).acquire_lock("sweep3/lr0.1/seed8", "nightly", hold_timeout=600)
        ResultStore(store).bind("sweep3", "default:Metrics")
        lines = run("ls", "-l", "sweep3/lr0.1", env=env).stdout.splitlines()
        size = (store / "sweep3/lr0.1/seed7.json").stat().st_size
        assert lines[0].split()[:2] == ["default:Metrics", str(size)]
        assert lines[0].split()[3:] == ["-", "sweep3/lr0.1/seed7"]
        assert lines[1].split()[3:5] == ["nightly", "until"] and lines[1].endswith("sweep3/lr0.1/seed8")
        out = run("ls", "-l", "--json", "sweep3/lr0.1", env=env).stdout
        assert jq(out, ".[1].lease.holder, .[0].lease, .[0].size", "-c") == f'"nightly"\nnull\n{size}\n'
        assert jq(out, '.[1].lease.expires | endswith("Z")') == "true\n"
        mtime = jq(out, ".[0].mtime", "-r").strip()
        assert abs(time.mktime(time.strptime(mtime, "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())) < 600
        # A directory shows the model its bare data becomes (its own binding or a parent's).
        top = run("ls", "-l", "--json", env=env).stdout
        assert jq(top, '.[] | select(.id == "sweep3") | .model', "-r") == "default:Metrics\n"
        deeper = run("ls", "-l", "sweep3", env=env).stdout
        assert deeper.split()[0] == "default:Metrics" and deeper.rstrip().endswith("sweep3/lr0.1/")

    def test_recursive_long_listing(self, env: dict[str, str]) -> None:
        lines = run("ls", "-lr", env=env).stdout.splitlines()
        assert [line.split()[0] for line in lines] == [
            "default:Metrics",
            "default:Metrics",
            "default:Counter",
        ]


class TestRm:
    def test_rm_deletes_each_id_and_stops_at_a_missing_one(self, env: dict[str, str], store: Path) -> None:
        assert run("rm", "top", "sweep3/lr0.1/seed7", env=env).stdout == ""
        assert ResultStore(store).list_ids() == ["sweep3/lr0.1/seed8"]
        assert "no result found for ID 'top'" in one_error(run("rm", "top", env=env, check=False))

    def test_rm_r_deletes_a_prefix(self, env: dict[str, str], store: Path) -> None:
        run("rm", "-r", "sweep3", env=env)
        assert ResultStore(store).list_ids() == ["top"]
        assert "nothing is stored under 'sweep3'" in one_error(
            run("rm", "-r", "sweep3", env=env, check=False)
        )

    def test_rm_r_refuses_a_prefix_with_a_leased_result_and_deletes_nothing(
        self, env: dict[str, str], store: Path
    ) -> None:
        ResultStore(store).acquire_lock("sweep3/lr0.1/seed8", "nightly", hold_timeout=600)
        error = one_error(run("rm", "-r", "sweep3", env=env, check=False))
        assert (
            "'sweep3/lr0.1/seed8' is leased by 'nightly' until 20" in error and "nothing was deleted" in error
        )
        assert len(ResultStore(store).list_ids("sweep3")) == 2
        run("rm", "-r", "sweep3", "--holder", "nightly", env=env)  # the holder may
        assert ResultStore(store).list_ids() == ["top"]

    def test_rm_r_with_lock_wait_waits_for_the_leases_to_end(self, env: dict[str, str], store: Path) -> None:
        ResultStore(store).acquire_lock("sweep3/lr0.1/seed8", "short", hold_timeout=1.0)
        started = time.monotonic()
        run("rm", "-r", "sweep3", "--lock-wait", "20", env=env)
        assert 0.5 < time.monotonic() - started < 20
        assert ResultStore(store).list_ids() == ["top"]

    def test_rm_of_a_leased_result_names_holder_and_expiry(self, env: dict[str, str], store: Path) -> None:
        ResultStore(store).acquire_lock("top", "nightly", hold_timeout=600)
        error = one_error(run("rm", "top", env=env, check=False))
        assert "locked by another holder: leased by 'nightly' until 20" in error


class TestCheck:
    def test_output_is_sorted_with_a_summary_line(self, env: dict[str, str], store: Path) -> None:
        (store / "zzz.txt").write_text("not a result")
        (store / "aaa.txt").write_text("not a result")
        (store / "sweep3" / "bad.json").write_text("{not json")
        done = run("check", env=env, check=False)
        assert done.returncode == 1
        lines = done.stdout.splitlines()
        paths = [line.split()[1] for line in lines[:-1]]
        assert paths == ["aaa.txt:", "sweep3/bad.json:", "zzz.txt:"]
        assert lines[0].startswith("foreign") and lines[1].startswith("corrupt")
        assert lines[-1] == f"4 results, 3 problems, 0 fixed ({store})"
        out = run("check", "--json", env=env, check=False).stdout
        assert (
            jq(out, "[.results, .ok, (.problems | map(.kind))]", "-c")
            == '[4,false,["foreign","corrupt","foreign"]]\n'
        )

    def test_a_healthy_store_exits_0_and_fix_removes_dead_leases(
        self, env: dict[str, str], store: Path
    ) -> None:
        ResultStore(store).acquire_lock("top", "gone", hold_timeout=0.05)
        time.sleep(0.2)
        assert run("check", env=env, check=False).returncode == 1
        fixed = run("check", "--fix", env=env)
        assert fixed.stdout.startswith("fixed   dead-lease") and fixed.stdout.endswith(
            "0 problems, 1 fixed" + f" ({store})\n"
        )
        assert run("check", env=env).stdout == f"3 results, 0 problems, 0 fixed ({store})\n"

    def test_a_progress_bar_shows_on_a_terminal_for_a_large_store(self, tmp_path: Path) -> None:
        path = tmp_path / "large"
        opened = ResultStore(FileBackend(path, durable=False))
        for n in range(120):
            opened.set(f"r/{n}", Counter(writer="w", value=n))
        parent, child = pty.openpty()
        try:
            done = subprocess.run(
                [*RESULTSFS, "check", "-s", str(path), "--models", MODELS],
                stdout=subprocess.PIPE, stderr=child, env=CLEAN_ENV, timeout=60, text=True,
            )  # fmt: skip
            os.close(child)
            child = -1
            drawn = b""
            while select.select([parent], [], [], 0.5)[0]:
                try:
                    chunk = os.read(parent, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                drawn += chunk
        finally:
            if child >= 0:
                os.close(child)
            os.close(parent)
        assert done.returncode == 0 and done.stdout == f"120 results, 0 problems, 0 fixed ({path})\n"
        assert b"checking" in drawn and b"100%" in drawn
        quiet = subprocess.run(
            [*RESULTSFS, "-q", "check", "-s", str(path), "--models", MODELS],
            capture_output=True, env=CLEAN_ENV, timeout=60, text=True,
        )  # fmt: skip
        assert quiet.stderr == ""


class TestModelsAndSchemas:
    def test_models_lists_namespace_model_and_typed_fields(self) -> None:
        out = run("models", "--models", MODELS).stdout
        assert "default:Metrics\n  loss: float\n  accuracy: float\n  step: int = 0\n" in out
        assert "  when: datetime | None = None\n  inner: Inner | None = None\n" in out
        assert "sweep:RunConfig\n" in out and "  shape: tuple[int, int]\n" in out
        listed = run("models", "--json", env={"RESULTSFS_MODELS": MODELS}).stdout
        assert jq(listed, '.[] | select(.ref == "default:Counter") | .fields | map(.name)', "-c") == (
            '["writer","value","payload"]\n'
        )
        assert jq(
            listed, '.[] | select(.model == "Metrics") | .fields[2] | [.type, .required, .default]', "-c"
        ) == ('["int",false,0]\n')

    def test_models_without_any_says_how_to_load_them(self) -> None:
        done = run("models")
        assert done.stdout == "" and "--models" in done.stderr and done.stderr.startswith("resultsfs: note:")
        assert jq(run("models", "--json").stdout, "length") == "0\n"

    def test_schema_is_a_json_schema_that_check_jsonschema_applies(self, tmp_path: Path, store: Path) -> None:
        schema = tmp_path / "metrics.json"
        schema.write_text(run("schema", "--models", MODELS, "default:Metrics").stdout)
        good, bad = tmp_path / "good.json", tmp_path / "bad.json"
        good.write_text(data(0.5))
        bad.write_text(json.dumps({"loss": 0.5, "accuracy": 7}))

        def validate(document: Path, against: Path) -> int:
            return subprocess.run(
                [str(CHECK_JSONSCHEMA), "--schemafile", str(against), str(document)],
                capture_output=True, timeout=60,
            ).returncode  # fmt: skip

        assert (validate(good, schema), validate(bad, schema)) == (0, 1)
        envelope_schema = tmp_path / "envelope.json"
        envelope_schema.write_text(run("schema", "--envelope", "Metrics", "--models", MODELS).stdout)
        assert validate(store / "sweep3/lr0.1/seed7.json", envelope_schema) == 0
        assert validate(good, envelope_schema) == 1

    def test_schema_of_an_unregistered_model_points_to_models(self) -> None:
        error = one_error(run("schema", "default:Nope", "--models", MODELS, check=False))
        assert "'default:Nope' is not registered" in error and "--models" in error
        error = one_error(run("schema", "other:Metrics", "--models", MODELS, check=False))
        assert "it is registered as default:Metrics" in error


class TestBind:
    def test_bind_and_unbind_a_prefix_of_a_store(self, env: dict[str, str], store: Path) -> None:
        out = run("bind", "runs", "default:Metrics", "--json", env=env).stdout
        assert jq(out, "[.directory, .model]", "-c") == '["runs","default:Metrics"]\n'
        run("put", "runs/a/b", stdin=data(), env=env)
        assert run("unbind", "runs", env=env).stdout == "runs: no longer bound to default:Metrics\n"
        assert "names no model" in one_error(run("put", "runs/c", stdin=data(), env=env, check=False))
        assert "has no binding of its own" in one_error(run("unbind", "runs", env=env, check=False))
        run("bind", "/", "default:Counter", env=env)
        error = one_error(run("unbind", "runs", env=env, check=False))
        assert "it inherits default:Counter from '/'" in error

    def test_binding_an_unregistered_model_points_to_models(self, store: Path) -> None:
        error = one_error(run("bind", "-s", str(store), "runs", "default:Metrics", check=False))
        assert "is not registered" in error and "--models" in error

    @pytest.mark.mount
    def test_bind_and_unbind_a_directory_of_a_mount_without_a_store(
        self, store: Path, tmp_path: Path
    ) -> None:
        with mounted(store, tmp_path / "mnt") as m:
            target = m.path("sweep3")
            assert (
                run("bind", str(target), "default:Metrics").stdout == f"{target}: bound to default:Metrics\n"
            )
            assert os.getxattr(target, "user.results.model") == b"default:Metrics"
            assert ResultStore(store).binding("sweep3/lr0.1") is not None
            (m.path("sweep3/new.json")).write_text(data(0.75))
            assert ResultStore(store).get("sweep3/new") == Metrics(loss=0.75, accuracy=0.9)
            # An absolute path names a directory of a mount even when a store is named too.
            done = run("unbind", str(target), "--json", env={"RESULTSFS_STORE": str(store)})
            assert jq(done.stdout, ".model", "-r") == "default:Metrics\n"
            assert ResultStore(store).binding("sweep3") is None
            assert "has no binding of its own" in one_error(run("unbind", str(target), check=False))

    def test_a_directory_outside_a_mount_is_a_usage_error(self, tmp_path: Path) -> None:
        error = one_error(run("bind", str(tmp_path), "default:Metrics", check=False), status=2)
        assert "not in a resultsfs mount" in error and "--store" in error
        error = one_error(run("bind", "-s", str(tmp_path), str(tmp_path), "Metrics", check=False), status=2)
        assert "leave out the leading /" in error


class TestLeases:
    def test_lock_prints_the_lease_and_locks_lists_it(self, env: dict[str, str]) -> None:
        out = run("lock", "top", "--holder", "nightly", "--ttl", "600", env=env).stdout
        assert out.startswith("top: leased by 'nightly' until 20")
        taken = run("lock", "sweep3/lr0.1/seed7", "--holder", "job 2", "--json", env=env).stdout
        assert jq(taken, "[.holder, .expires]", "-c") == '["job 2",null]\n'
        listed = run("locks", env=env).stdout.splitlines()
        assert [line.split()[0] for line in listed] == ["sweep3/lr0.1/seed7", "top"]
        assert listed[0].endswith("never") and "nightly" in listed[1]
        out = run("locks", "--json", env=env).stdout
        assert jq(out, '.[] | "\\(.id)=\\(.holder)"', "-r") == "sweep3/lr0.1/seed7=job 2\ntop=nightly\n"
        assert (
            jq(run("locks", "sweep3", "--json", env=env).stdout, "map(.id)", "-c")
            == '["sweep3/lr0.1/seed7"]\n'
        )

    def test_a_lease_held_by_another_is_exit_75_naming_holder_and_expiry(self, env: dict[str, str]) -> None:
        run("lock", "top", "--holder", "nightly", "--ttl", "600", env=env)
        done = run("lock", "top", "--holder", "me", "--wait", "0.2", env=env, check=False)
        error = one_error(done, status=75)
        assert "leased by 'nightly' until 20" in error

    def test_lock_without_holder_or_command_is_a_usage_error(self, env: dict[str, str]) -> None:
        done = run("lock", "top", env=env, check=False)
        assert done.returncode == 2 and "--holder is required" in done.stderr

    def test_unlock_by_another_holder_names_holder_and_expiry(self, env: dict[str, str]) -> None:
        run("lock", "top", "--holder", "nightly", "--ttl", "600", env=env)
        error = one_error(run("unlock", "top", "--holder", "me", env=env, check=False))
        assert "held by 'nightly' until 20" in error and "--force" in error
        run("unlock", "top", "--holder", "nightly", env=env)
        assert run("locks", env=env).stdout == ""

    def test_unlock_force_breaks_loudly_and_logs_to_syslog(self, env: dict[str, str], tmp_path: Path) -> None:
        run("lock", "top", "--holder", "nightly", "--ttl", "600", env=env)
        expires = json.loads(run("locks", "--json", env=env).stdout)[0]["expires"]
        # A syslog socket of the test's own at /dev/log, in a mount namespace of the command's own.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock = tmp_path / "log.sock"
        listener.bind(str(sock))
        listener.settimeout(10)
        command = " ".join([*RESULTSFS, "unlock", "top", "--force"])
        script = f"mount -t tmpfs tmpfs /dev && touch /dev/log /dev/null && mount --bind {sock} /dev/log && {command}"
        try:
            done = subprocess.run(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                capture_output=True, text=True, env={**CLEAN_ENV, **env}, timeout=60,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            logged = listener.recv(65536).decode()
        finally:
            listener.close()
        warning = done.stderr.strip()
        assert warning.startswith("resultsfs: warning: broke the lease on 'top' held by 'nightly' until ")
        assert expires in warning and done.stderr.count("\n") == 1
        assert logged.startswith("<12>") and "resultsfs[" in logged  # facility user, level warning
        assert warning.removeprefix("resultsfs: warning: ") in logged
        assert run("locks", env=env).stdout == ""
        again = run("unlock", "top", "--force", env=env)
        assert "nothing was broken" in again.stderr

    def test_verbose_shows_the_librarys_log(self, env: dict[str, str]) -> None:
        run("lock", "top", "--holder", "nightly", env=env)
        done = run("-v", "unlock", "top", "--force", env=env)
        assert "resultsfs: info: resultsfs.store: broke the lease on 'top'" in done.stderr
        assert run("-q", "unlock", "top", "--force", env=env).stderr == ""  # nothing left to break: a note
        failed = run("-vv", "get", "nope", env=env, check=False)  # -vv: debug records, and the traceback
        assert failed.returncode == 1 and "Traceback" in failed.stderr
        assert "resultsfs: debug: resultsfs.cli.options: resultsfs get failed" in failed.stderr
        assert failed.stderr.splitlines()[-1].startswith("Error: no result found for ID 'nope'")

    def test_unlock_needs_holder_or_force(self, env: dict[str, str]) -> None:
        assert run("unlock", "top", env=env, check=False).returncode == 2
        assert run("unlock", "top", "--holder", "a", "--force", env=env, check=False).returncode == 2


def _worker(store: Path, rid: str, started: Path, done: Path) -> subprocess.Popen[str]:
    """A Python worker using the store API: it writes ``rid`` once the command under the lease started.

    Past the lease's TTL it is refused at once; then it waits for the lease and writes.
    """
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from models import Counter
        from resultsfs import ResultStore, ResultLockedError
        from pathlib import Path
        store = ResultStore({str(store)!r})
        while not Path({str(started)!r}).exists():
            time.sleep(0.02)
        time.sleep(3)  # past the lease's 2 s TTL: only the heartbeat keeps it
        try:
            store.set({rid!r}, Counter(writer="worker", value=1), "overwrite")
            print("written too early")
        except ResultLockedError as exc:
            print("refused:", exc)
        deadline = time.monotonic() + 30
        while True:
            try:
                store.set({rid!r}, Counter(writer="worker", value=2), "overwrite")
                break
            except ResultLockedError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        print("written; command done:", Path({str(done)!r}).exists())
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Background processes a test starts; killed if still running when it ends."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


class TestLockAroundACommand:
    def test_the_heartbeat_keeps_the_lease_past_its_ttl_while_a_worker_waits(
        self, store: Path, tmp_path: Path, processes: list[subprocess.Popen[str]]
    ) -> None:
        started, done = tmp_path / "started", tmp_path / "done"
        pipeline = f"touch {started}; sleep 5 | cat; echo finished > {done}"
        wrapper = subprocess.Popen(
            [*RESULTSFS, "lock", "-s", str(store), "top", "--ttl", "2", "--holder", "shell-job", "--", "sh", "-c", pipeline],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLEAN_ENV,
        )  # fmt: skip
        processes.append(wrapper)
        worker = _worker(store, "top", started, done)
        processes.append(worker)
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("refused: ") and "leased by 'shell-job' until" in lines[0]
        assert lines[1] == "written; command done: True"
        assert wrapper.wait(timeout=30) == 0
        assert ResultStore(store).get("top") == Counter(writer="worker", value=2)
        assert ResultStore(store).lease("top") is None

    @pytest.mark.parametrize(
        ("command", "status"),
        [
            ("exit 0", 0),
            ("exit 7", 7),
            ("kill -KILL $$", 128 + signal.SIGKILL),
            ("kill -TERM $$", 128 + signal.SIGTERM),
        ],
    )
    def test_the_commands_status_is_the_exit_status_and_the_lease_is_released(
        self, env: dict[str, str], store: Path, command: str, status: int
    ) -> None:
        done = run("lock", "top", "--", "sh", "-c", command, env=env, check=False)
        assert done.returncode == status, done.stderr
        assert ResultStore(store).lease("top") is None

    def test_the_command_runs_while_the_lease_is_held(self, env: dict[str, str]) -> None:
        done = run("lock", "top", "--holder", "h", "--", "sh", "-c", f"{' '.join(RESULTSFS)} locks", env=env)
        assert done.stdout.split()[:2] == ["top", "h"]

    def test_put_and_rm_under_the_lease_act_as_its_holder(self, env: dict[str, str], store: Path) -> None:
        """COMMAND finds the holder in RESULTSFS_HOLDER, which put and rm take as their --holder."""
        script = f"""echo "holder=$RESULTSFS_HOLDER"; printf '{{"value": 5}}' | {" ".join(RESULTSFS)} put --merge top"""
        done = run("lock", "top", "--", "sh", "-c", script, env=env, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("holder=") and done.stdout.split()[0].count(":") == 2  # HOST:PID:THREAD
        assert ResultStore(store).get("top").value == 5 and ResultStore(store).lease("top") is None
        run("lock", "top", "--holder", "h", "--ttl", "600", env=env)
        assert "leased by 'h'" in one_error(run("rm", "top", env=env, check=False))
        run("rm", "top", env={**env, "RESULTSFS_HOLDER": "h"})
        assert not ResultStore(store).exists("top")

    def test_a_lease_held_by_another_is_75_and_the_command_does_not_run(
        self, env: dict[str, str], tmp_path: Path
    ) -> None:
        run("lock", "top", "--holder", "nightly", "--ttl", "600", env=env)
        marker = tmp_path / "ran"
        started = time.monotonic()
        done = run("lock", "top", "--wait", "0.5", "--", "touch", str(marker), env=env, check=False)
        assert done.returncode == 75 and time.monotonic() - started >= 0.5
        assert "leased by 'nightly' until 20" in done.stderr and not marker.exists()

    def test_a_missing_command_is_127_and_one_not_executable_126(
        self, env: dict[str, str], tmp_path: Path
    ) -> None:
        done = run("lock", "top", "--", "no-such-command-anywhere", env=env, check=False)
        assert done.returncode == 127 and "command not found" in done.stderr
        plain = tmp_path / "plain.txt"
        plain.write_text("not a program")
        assert run("lock", "top", "--", str(plain), env=env, check=False).returncode == 126
        assert ResultStore(env["RESULTSFS_STORE"]).lease("top") is None

    def test_a_command_killed_from_outside_releases_the_lease(
        self, store: Path, tmp_path: Path, processes: list[subprocess.Popen[str]]
    ) -> None:
        pid_file = tmp_path / "pid"
        wrapper = subprocess.Popen(
            [*RESULTSFS, "lock", "-s", str(store), "top", "--ttl", "600", "--", "sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLEAN_ENV,
        )  # fmt: skip
        processes.append(wrapper)
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 20)
        assert ResultStore(store).lease("top") is not None
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        assert wrapper.wait(timeout=30) == 128 + signal.SIGKILL
        assert ResultStore(store).lease("top") is None

    def test_sigterm_to_the_wrapper_reaches_the_command_and_the_lease_is_released(
        self, store: Path, tmp_path: Path, processes: list[subprocess.Popen[str]]
    ) -> None:
        pid_file = tmp_path / "pid"
        wrapper = subprocess.Popen(
            [*RESULTSFS, "lock", "-s", str(store), "top", "--", "sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLEAN_ENV,
        )  # fmt: skip
        processes.append(wrapper)
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 20)
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=30) == 128 + signal.SIGTERM
        assert ResultStore(store).lease("top") is None

    @pytest.mark.mount
    def test_through_a_mount_the_command_writes_as_the_holder_and_others_get_ebusy(
        self, store: Path, tmp_path: Path, processes: list[subprocess.Popen[str]]
    ) -> None:
        new = tmp_path / "new.json"
        new.write_text(
            json.dumps(
                {"model_type": "Counter", "namespace": "default", "data": {"writer": "sh", "value": 5}}
            )
        )
        done = tmp_path / "done"
        with mounted(store, tmp_path / "mnt") as m:
            target = m.path("top.json")
            script = f"cat {new} > {target} && touch {done} && sleep 4"
            wrapper = subprocess.Popen(
                [*RESULTSFS, "lock", "-s", str(store), "top", "--ttl", "2", "--", "sh", "-c", script],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLEAN_ENV,
            )  # fmt: skip
            processes.append(wrapper)
            wait_until(done.exists, 20, "the command did not write", still=lambda: wrapper.poll() is None)
            assert ResultStore(store).get("top") == Counter(writer="sh", value=5)
            outside = json.dumps(
                {"model_type": "Counter", "namespace": "default", "data": {"writer": "x", "value": 6}}
            )
            assert write_errno(target, outside.encode()) == errno.EBUSY
            time.sleep(2.5)  # past the TTL: the heartbeat keeps the lease
            assert write_errno(target, outside.encode()) == errno.EBUSY
            _, err = wrapper.communicate(timeout=30)
            assert wrapper.returncode == 0, err
            assert write_errno(target, outside.encode()) is None
        assert ResultStore(store).get("top") == Counter(writer="x", value=6)


def complete(
    words: str, env: Mapping[str, str] | None = None
) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """What bash completion offers for the last of ``words`` (click's protocol, as its script runs it)."""
    parts = words.split(" ")
    done = subprocess.run(
        RESULTSFS,
        capture_output=True,
        text=True,
        timeout=30,
        env={
            **CLEAN_ENV,
            **(env or {}),
            "_RESULTSFS_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
        },
        check=False,
    )
    return [line.partition(",")[2] for line in done.stdout.splitlines() if line], done


class TestCompletion:
    def test_ids_complete_one_level_at_a_time(self, store: Path) -> None:
        env = {"RESULTSFS_STORE": str(store)}
        assert complete("resultsfs get ", env)[0] == ["top", "sweep3/"]
        # One directory matches: what is in it is offered too, so that the shell stops at "sweep3/".
        assert complete("resultsfs get s", env)[0] == ["sweep3/", "sweep3/lr0.1/"]
        assert complete("resultsfs get t", env)[0] == ["top"]
        assert complete("resultsfs get sweep3/lr0.1/s", env)[0] == [
            "sweep3/lr0.1/seed7",
            "sweep3/lr0.1/seed8",
        ]
        assert complete(f"resultsfs rm -s {store} sweep3/lr0.1/seed8")[0] == ["sweep3/lr0.1/seed8"]
        assert complete(f"resultsfs -s {store} lock s")[0] == ["sweep3/", "sweep3/lr0.1/"]
        # A directory argument completes directories only.
        assert complete(f"resultsfs bind -s {store} ")[0] == ["sweep3/", "sweep3/lr0.1/"]

    def test_without_a_store_or_with_a_broken_one_nothing_is_completed_quietly(self, tmp_path: Path) -> None:
        for env in (
            {},
            {"RESULTSFS_STORE": str(tmp_path / "missing")},
            {"RESULTSFS_STORE": "sqlite://host/x"},
        ):
            found, done = complete("resultsfs get x", env)
            assert (found, done.returncode, done.stderr) == ([], 0, "")

    def test_a_store_that_does_not_answer_completes_nothing_within_seconds(self) -> None:
        # A server that takes the connection and never answers: libpq would wait a minute.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        try:
            port = silent.getsockname()[1]
            env = {"RESULTSFS_STORE": f"postgresql://127.0.0.1:{port}/x?connect_timeout=60&sslmode=disable"}
            started = time.monotonic()
            found, done = complete("resultsfs get x", env)
            took = time.monotonic() - started
        finally:
            silent.close()
        assert (found, done.returncode, done.stderr) == ([], 0, "")
        assert 2 <= took < 10  # it waited for the store, and gave up

    def test_the_shell_scripts_are_generated(self) -> None:
        for shell, marker in (
            ("bash", "complete -o nosort -F"),
            ("zsh", "compdef"),
            ("fish", "complete --no-files"),
        ):
            done = subprocess.run(
                RESULTSFS, capture_output=True, text=True, timeout=30,
                env={**CLEAN_ENV, "_RESULTSFS_COMPLETE": f"{shell}_source"},
            )  # fmt: skip
            assert marker in done.stdout, (shell, done.stdout)


class TestOtherBackends:
    def test_the_store_commands_work_on_an_sqlite_url(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path}/results.db"
        env = {"RESULTSFS_STORE": url, "RESULTSFS_MODELS": MODELS}
        run("init", env=env)
        run("bind", "evals", "default:Metrics", env=env)
        run("put", "evals/a", stdin=data(0.5), env=env)
        run("put", "evals/a", "--merge", stdin='{"step": 3}', env=env)
        assert jq(run("get", "evals/a", env=env).stdout, ".step") == "3\n"
        assert run("ls", "-l", "evals", env=env).stdout.split()[0] == "default:Metrics"
        run("lock", "evals/a", "--holder", "h", env=env)
        assert jq(run("locks", "--json", env=env).stdout, ".[0].holder", "-r") == "h\n"
        assert run("check", env=env).stdout.startswith("1 results, 0 problems")
        run("unlock", "evals/a", "--holder", "h", env=env)
        run("rm", "-r", "evals", env=env)
        assert run("ls", "-r", env=env).stdout == ""

    def test_the_store_commands_work_on_a_postgresql_url(self, postgres: PostgresServer) -> None:
        env = {"RESULTSFS_STORE": postgres.url(), "RESULTSFS_MODELS": MODELS}
        run("init", env=env)
        run("put", "--model", "default:Counter", "p/q", stdin='{"writer": "pg", "value": 3}', env=env)
        assert run("ls", "p", env=env).stdout == "p/q\n"
        assert run("lock", "p/q", "--", "sh", "-c", "exit 4", env=env, check=False).returncode == 4
        assert run("locks", env=env).stdout == ""
        assert complete("resultsfs get p/", env)[0] == ["p/q"]
        run("rm", "p/q", env=env)
        assert run("ls", "-r", env=env).stdout == ""
