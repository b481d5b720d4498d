"""Published numbers as data, table rendering with missing runs, and the make targets' dry runs."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import REPO_ROOT
from dear_ir import tables
from dear_ir.collections import get_collection
from dear_ir.runs import Run, write_run
from dear_ir.tables import (
    Measurements,
    load_tables,
    model_tag,
    render_table,
    render_tables,
    requested_pipelines,
    run_path,
)

# The DeAR paper's numbers (arXiv:2508.16998), cell by cell: (table, run, column label) -> value.
PUBLISHED = {
    ("dl", "BM25", "DL19"): 50.58, ("dl", "BM25", "DL20"): 47.96,
    ("dl", "monoT5-3B", "DL19"): 71.83, ("dl", "monoT5-3B", "DL20"): 68.89,
    ("dl", "RankGPT (GPT-4)", "DL19"): 75.59, ("dl", "RankGPT (GPT-4)", "DL20"): 70.56,
    ("dl", "DeAR-P-8B", "DL19"): 74.50, ("dl", "DeAR-P-8B", "DL20"): 68.71,
    ("dl", "DeAR-L-8B", "DL19"): 77.91, ("dl", "DeAR-L-8B", "DL20"): 75.63,
    ("noveleval", "BM25", "nDCG@1"): 33.33, ("noveleval", "BM25", "nDCG@5"): 45.96,
    ("noveleval", "BM25", "nDCG@10"): 55.77,
    ("noveleval", "RankGPT (GPT-4)", "nDCG@1"): 85.71, ("noveleval", "RankGPT (GPT-4)", "nDCG@5"): 87.49,
    ("noveleval", "RankGPT (GPT-4)", "nDCG@10"): 90.45,
    ("noveleval", "DeAR-L-8B", "nDCG@1"): 92.86, ("noveleval", "DeAR-L-8B", "nDCG@5"): 88.04,
    ("noveleval", "DeAR-L-8B", "nDCG@10"): 92.01,
    ("nq", "DeAR-L-8B", "Top-1"): 54.29,
}
BEIR_LABELS = ["Covid", "NFCorpus", "Touche", "DBPedia", "SciFact", "News", "Robust04", "Signal"]
BEIR_ROWS = {
    "BM25": [59.47, 30.75, 44.22, 31.80, 67.89, 39.52, 40.70, 33.05, 43.42],
    "monoT5-3B": [80.71, 38.97, 32.41, 44.45, 76.57, 48.49, 56.71, 32.55, 51.36],
    "DeAR-P-8B": [84.14, 36.57, 37.23, 46.27, 77.39, 51.71, 52.43, 29.91, 51.96],
    "DeAR-L-8B": [88.36, 40.56, 37.23, 47.12, 74.95, 52.89, 62.18, 34.40, 54.71],
}
for run_name, values in BEIR_ROWS.items():
    for label, value in zip(BEIR_LABELS + ["average"], values):
        PUBLISHED[("beir", run_name, label)] = value


def published_cells():
    cells = {}
    for key, table in load_tables().items():
        for row in table.rows:
            for column, value in zip(table.columns, row.values):
                cells[(key, row.run, column.label)] = value
            if row.average is not None:
                cells[(key, row.run, "average")] = row.average
    return cells


def test_every_published_number_present():
    assert published_cells() == PUBLISHED


def test_every_table_names_its_source():
    for table in load_tables().values():
        assert "arXiv:2508.16998" in table.source


def test_rows_name_existing_collections():
    for table in load_tables().values():
        for column in table.columns:
            assert get_collection(column.collection).name == column.collection


def test_reproducible_rows_have_stages():
    dl = load_tables()["dl"]
    stages = {row.run: row.stages for row in dl.rows}
    assert stages["BM25"] == ("bm25",)
    assert stages["DeAR-P-8B"] == ("bm25", "dear-p-8b")
    assert stages["DeAR-L-8B"] == ("bm25", "dear-p-8b", "dear-l-8b")
    assert stages["monoT5-3B"] is None


def test_model_tag_and_run_path(tmp_path):
    assert model_tag("abdoelsayed/dear-8b-reranker-ce-v1") == "dear-8b-reranker-ce-v1"
    assert model_tag("models/student/") == "student"
    assert run_path(tmp_path, "dl19", ("bm25", "minilm")) == tmp_path / "dl19.bm25.minilm.trec"


def test_requested_pipelines():
    assert requested_pipelines("minilm", "") == [("bm25",), ("bm25", "minilm")]
    assert requested_pipelines("p", "l") == [("bm25",), ("bm25", "p"), ("bm25", "p", "l")]
    assert requested_pipelines("", "l") == [("bm25",)]


@pytest.fixture
def dl20_offline(tmp_path, monkeypatch):
    """A data folder with DL20's topics and qrels, and a runs folder; DL20 judges docid d1 relevant."""
    data = tmp_path / "data"
    dl20 = get_collection("dl20")
    for role, text in (("topics", "1\tquery one\n2\tquery two\n"), ("qrels", "1 0 d1 3\n2 0 d2 2\n")):
        path = data / dl20.offline[role]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.setenv("DEAR_IR_DATA", str(data))
    runs = tmp_path / "runs"
    runs.mkdir()
    return runs


def dl_table_for(runs, model_p="dear-p-8b", model_l="dear-l-8b"):
    table = load_tables()["dl"]
    return render_table(table, Measurements(runs, "offline"), requested_pipelines(model_p, model_l), {"dl20"})


def test_missing_run_shows_reason_not_zero(dl20_offline):
    markdown = dl_table_for(dl20_offline)
    bm25_line = next(line for line in markdown.splitlines() if line.startswith("| BM25 | DL20"))
    cells = [cell.strip() for cell in bm25_line.split("|")[1:-1]]
    assert cells[2] == "47.96"
    assert cells[3] == "—"
    assert cells[4] == "—"
    assert cells[5].startswith("missing [")
    number = cells[5].removeprefix("missing [").rstrip("]")
    note = next(line for line in markdown.splitlines() if line.startswith(f"[{number}]"))
    assert "trec_results_dl20.txt" in note
    assert "0.00 |" not in bm25_line


def test_measured_run_beside_published(dl20_offline):
    # qid 1 ranks its relevant passage first, qid 2 never retrieves it: nDCG@10 = 0.5.
    write_run(Run({"1": [("d1", 2.0), ("x", 1.0)], "2": [("x", 1.0)]}), run_path(dl20_offline, "dl20", ("bm25",)))
    markdown = dl_table_for(dl20_offline)
    bm25_line = next(line for line in markdown.splitlines() if line.startswith("| BM25 | DL20"))
    cells = [cell.strip() for cell in bm25_line.split("|")[1:-1]]
    assert cells[2:5] == ["47.96", "50.00", "+2.04"]
    assert "dl20.bm25.trec" in cells[5]


def test_extra_pipeline_row_without_published(dl20_offline):
    write_run(Run({"1": [("d1", 2.0)], "2": [("d2", 1.0)]}), run_path(dl20_offline, "dl20", ("bm25", "minilm")))
    markdown = dl_table_for(dl20_offline, "minilm", "")
    line = next(line for line in markdown.splitlines() if line.startswith("| BM25 → minilm | DL20"))
    cells = [cell.strip() for cell in line.split("|")[1:-1]]
    assert cells[2:5] == ["—", "100.00", "—"]
    assert "no published number" in cells[5]


def test_baseline_rows_say_not_run(dl20_offline):
    markdown = dl_table_for(dl20_offline)
    line = next(line for line in markdown.splitlines() if line.startswith("| monoT5-3B | DL20"))
    assert "baseline not run by dear_ir" in line


def test_average_missing_until_all_measured(tmp_path, monkeypatch):
    monkeypatch.setenv("DEAR_IR_DATA", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    markdown = render_tables(tmp_path / "runs", table_keys=["beir"])
    line = next(line for line in markdown.splitlines() if line.startswith("| BM25 | average"))
    assert "| 43.42 | — | — | missing [" in line


def test_collections_filter_drops_other_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("DEAR_IR_DATA", str(tmp_path))
    markdown = render_tables(tmp_path / "runs", collections=["dl19"])
    assert "TREC DL passage" in markdown
    assert "BEIR" not in markdown
    assert "| DL20 |" not in markdown


def test_cli_rejects_unknown_table(capsys):
    assert tables.main(["--tables", "dl42"]) == 1


# make targets, as dry runs -----------------------------------------------------------------------


def make_dry_run(*arguments: str, hub_offline: str | None = None) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    environment = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    if hub_offline is not None:
        environment["HF_HUB_OFFLINE"] = hub_offline
    completed = subprocess.run(
        ["make", "-n", "-B", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, check=True, env=environment,
    )
    return completed.stdout


def test_make_default_pipeline():
    output = make_dry_run("dl19")
    assert "dear_ir.pipeline first-stage dl19 --output runs/dl19.bm25.trec --hits 100" in output
    assert "--stage pointwise --model 'dear-p-8b' --input runs/dl19.bm25.trec --output runs/dl19.bm25.dear-p-8b.trec" in output
    assert "--output runs/dl19.bm25.dear-p-8b.dear-l-8b.trec" in output
    assert "--rank-end 30 --window 20 --step 10 --sample" in output
    assert "--temperature 0.5 --top-p 0.9 --seed 0" in output


def test_make_lets_hub_models_download():
    # The Makefile's own HF_HUB_OFFLINE=1 is lifted for hub checkpoints; a user's setting is kept.
    assert "--allow-hub-download" in make_dry_run("dl19")
    assert "--allow-hub-download" not in make_dry_run("dl19", hub_offline="1")


def test_make_without_listwise_stage():
    output = make_dry_run("dl19", "MODEL_P=minilm", "MODEL_L=")
    assert f"--output {run_path('runs', 'dl19', ('bm25', 'minilm'))}" in output
    assert "--stage listwise" not in output
    assert "--model-p 'minilm' --model-l '' --collections dl19" in output


def test_make_beir_skips_missing_collections():
    output = make_dry_run("beir", "MODEL_P=minilm", "MODEL_L=")
    for name in ("covid", "nfc", "touche", "dbpedia", "scifact", "news", "robust04", "signal"):
        assert f"first-stage {name} --output runs/{name}.bm25.trec" in output
    assert "--on-missing skip" in output
    assert "--on-missing stop" not in output


def test_make_settings_override():
    output = make_dry_run("noveleval", "HITS=20", "DEVICE=cuda:1", "DTYPE=float16", "WINDOW=10", "STEP=5")
    assert "--hits 20" in output
    assert "--device cuda:1 --dtype 'float16'" in output
    assert "--window 10 --step 5" in output


def test_found_runs_add_rows(dl20_offline):
    write_run(Run({"1": [("d1", 2.0)], "2": [("d2", 1.0)]}), run_path(dl20_offline, "dl20", ("bm25", "student", "smollm2")))
    markdown = dl_table_for(dl20_offline)
    line = next(line for line in markdown.splitlines() if line.startswith("| BM25 → student → smollm2 | DL20"))
    assert "| 100.00 |" in line
