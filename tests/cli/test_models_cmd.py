"""`ssmbench models` through Typer's CliRunner: table, JSON, presets list, one-line errors."""

import json

from typer.testing import CliRunner

from ssmbench.cli import app
from ssmbench.models.byte_sets import BYTE_MODEL_SETS
from ssmbench.models.size import megabyte_stack_params, param_counts
from ssmbench.models.zoo_sets import ZOO_MODEL_SETS

runner = CliRunner()


def test_models_table():
    result = runner.invoke(app, ["models", "--preset", "smoke"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ZOO_MODEL_SETS["smoke"].names():
        assert name in result.output
    assert "FLOPs/byte" in result.output  # vocab 256: a token is a byte


def test_models_json_matches_counts():
    result = runner.invoke(app, ["models", "--preset", "smoke", "--json", "--seq-len", "64"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["preset"] == "smoke"
    rows = {r["name"]: r for r in data["models"]}
    assert list(rows) == ZOO_MODEL_SETS["smoke"].names()
    moe = param_counts(ZOO_MODEL_SETS["smoke"].get("moe"))
    assert (
        rows["moe"]["params_total"] == moe.total
        and rows["moe"]["params_active_nonembed"] == moe.active_nonembed
    )
    keys = {
        "params_total",
        "params_active",
        "params_total_nonembed",
        "params_active_nonembed",
        "flops_per_token",
    }
    assert all(keys <= set(r) and r["seq_len"] == 64 for r in rows.values())


def test_models_experts_option_changes_moe_only():
    base = json.loads(runner.invoke(app, ["models", "--preset", "smoke", "--json"]).stdout)
    more = json.loads(runner.invoke(app, ["models", "--preset", "smoke", "--json", "--experts", "8"]).stdout)
    b, m = ({r["name"]: r for r in d["models"]} for d in (base, more))
    assert m["moe"]["params_total"] > b["moe"]["params_total"]
    assert m["moe"]["params_active"] == b["moe"]["params_active"] + 2 * 64 * 4  # 2 routers, 4 more experts
    assert m["transformer"] == b["transformer"]


def test_models_lists_presets_without_preset():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    assert {"smoke", "small", "paper-v1", "paper-v2-25m", "paper-v2-100m"} <= set(json.loads(result.stdout))


def test_bad_input_is_one_line_exit_2():
    for args in (
        ["--preset", "nope"],
        ["--preset", "smoke", "--experts", "0"],
        ["--preset", "smoke", "--seq-len", "0"],
    ):
        result = runner.invoke(app, ["models", *args])
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr


def test_match_flops_resizes_the_others():
    result = runner.invoke(app, ["models", "--preset", "bytes-smoke", "--json", "--match-flops", "mambabyte"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "mambabyte" not in data["matched"] and len(data["matched"]) == len(data["models"]) - 1
    ref = next(r for r in data["models"] if r["name"] == "mambabyte")["flops_per_token"]
    for m in data["matched"].values():
        assert m["reference_flops_per_byte"] == ref and m["value"] >= 1
    bad = runner.invoke(app, ["models", "--preset", "bytes-smoke", "--match-flops", "nope"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error:")


def test_bytes_paper_shows_megabyte_stack_sizes():
    result = runner.invoke(app, ["models", "--preset", "bytes-paper", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["models"]}
    n_global, n_local = megabyte_stack_params(BYTE_MODEL_SETS["bytes-paper"].get("megabyte-758m-262m"))
    structure = rows["megabyte-758m-262m"]["structure"]
    assert f"({n_global / 1e6:,.1f}M)" in structure and f"({n_local / 1e6:,.1f}M)" in structure
    assert rows["megabyte-758m-262m"]["token"] == "byte"
