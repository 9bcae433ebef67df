"""Every loader checks what it reads and names the file and the line or item (issue 27: on main a
truncated FACTOR CSV gave 620 of 1036 items, an mc1 item with 0 or 4 true answers passed, an FV
output of null became the string "None", a truncated JSON file was not named)."""

import json
import shutil

import pytest

import interp.data.datasets_io as dio


@pytest.fixture
def data(tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    for sub in ("factor", "truthfulqa", "function_vectors", "caa/refusal"):
        shutil.copytree(dio.DATA_ROOT / sub, root / sub)
    monkeypatch.setattr(dio, "DATA_ROOT", root)
    return root


def test_truncated_factor_csv_names_file_and_line(data):
    path = data / "factor" / "news_factor.csv"
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * 0.6)])
    with pytest.raises(ValueError, match=r"news_factor.csv: line \d+ \(item \d+\) has empty or missing fields"):
        dio.load_factor("news")


def test_factor_csv_without_a_column_is_named(data):
    path = data / "factor" / "news_factor.csv"
    path.write_text(path.read_text().replace("completion,", "completions,", 1))
    with pytest.raises(ValueError, match=r"the header lacks columns \['completion'\]"):
        dio.load_factor("news")


@pytest.mark.parametrize("n_true", [0, 2])
def test_truthfulqa_mc1_needs_exactly_one_true_answer(data, n_true):
    path = data / "truthfulqa" / "v1" / "mc_task.json"
    rows = json.loads(path.read_text())
    answers = list(rows[3]["mc1_targets"])
    rows[3]["mc1_targets"] = {a: int(i < n_true) for i, a in enumerate(answers)}
    path.write_text(json.dumps(rows))
    with pytest.raises(ValueError, match=f"mc_task.json: item 3 has {n_true} true mc1 answers"):
        dio.load_truthfulqa_mc("v1")


@pytest.mark.parametrize(
    "item, why",
    [({"input": "hot", "output": None}, "needs non-empty string"), ({"input": "hot"}, "needs non-empty string")],
)
def test_fv_items_need_string_input_and_output(data, item, why):
    path = data / "function_vectors" / "antonym.json"
    pairs = json.loads(path.read_text())
    pairs[5] = item
    path.write_text(json.dumps(pairs))
    with pytest.raises(ValueError, match=f"antonym.json: item 5 {why}"):
        dio.load_fv_task("antonym")


def test_truncated_json_names_the_file(data):
    path = data / "function_vectors" / "antonym.json"
    path.write_text(path.read_text()[:500])
    with pytest.raises(ValueError, match=r"antonym.json: not valid JSON at line \d+"):
        dio.load_fv_task("antonym")


def test_caa_items_need_their_keys(data):
    path = data / "caa" / "refusal" / "generate_dataset.json"
    items = json.loads(path.read_text())
    del items[2]["answer_matching_behavior"]
    path.write_text(json.dumps(items))
    with pytest.raises(ValueError, match="generate_dataset.json: item 2 needs non-empty string"):
        dio.load_caa("refusal", "generate")
