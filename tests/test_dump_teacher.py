"""Teacher dumps: schema, sampling, resume after a crash and bad input, with a fake teacher."""

import json
import logging

import pytest

from dear_ir import dump_teacher as dt
from dear_ir.runs import Run


class OverlapScorer:
    """A stand-in bi-encoder: the share of query words found in the passage, in [0, 1]."""

    name = "overlap"

    def __init__(self, fail_after=None, kind="bi-encoder"):
        self.settings = {"kind": kind, "lowercase": True}
        self.calls = 0
        self.scored_queries = []
        self.fail_after = fail_after

    def score(self, pairs):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("teacher crashed")
        self.calls += 1
        self.scored_queries.append(pairs[0][0])
        scores = []
        for query, text in pairs:
            words = set(query.lower().split())
            scores.append(len(words & set(text.lower().split())) / len(words))
        return scores


class DictSource:
    name = "dict corpus"

    def __init__(self, texts):
        self.texts = texts

    def text(self, docid):
        return self.texts.get(docid)


TOPICS = {"1": "red apple pie", "2": "blue sky", "3": "green tea"}


def make_inputs():
    texts = {}
    rankings = {}
    for qid, query in TOPICS.items():
        hits = []
        for rank in range(20):
            docid = f"d{qid}-{rank}"
            # Every third passage shares a query word, so scores vary.
            texts[docid] = f"{query.split()[0]} passage {rank}" if rank % 3 == 0 else f"other passage {rank}"
            hits.append((docid, 100.0 - rank))
        rankings[qid] = hits
    texts["judged-pos-1"] = "red apple pie recipe"
    texts["judged-pos-1b"] = "apple pie"
    qrels = {
        "1": {"judged-pos-1": 2, "judged-pos-1b": 1, "d1-4": 1, "d1-5": 0, "absent-doc": 3},
        "2": {"d2-7": 3},
    }
    return Run(rankings, name="train-run"), texts, qrels


def write_dump(tmp_path, scorer=None, name="dump.jsonl", **sampling):
    run, texts, qrels = make_inputs()
    output = tmp_path / name
    settings = dt.SamplingSettings(**{"group_size": 4, "negative_depth": 10, "max_positives": 2, **sampling})
    stats = dt.dump_teacher(
        run, TOPICS, DictSource(texts), scorer or OverlapScorer(), output,
        qrels=qrels, sampling=settings,
    )
    return output, stats


def read_lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_dump_schema(tmp_path):
    output, stats = write_dump(tmp_path)
    header, *records = read_lines(output)

    assert header["dear_ir_teacher_dump"] == 1
    assert header["teacher"] == {
        "name": "overlap",
        "settings": {"kind": "bi-encoder", "lowercase": True},
        "kind": "bi-encoder",
        "logit_scale": 20.0,
    }
    assert header["sampling"]["group_size"] == 4
    assert header["run"] == "train-run"
    assert [record["qid"] for record in records] == ["1", "2", "3"]
    assert stats.queries == 3
    assert not (tmp_path / "dump.jsonl.partial").exists()

    for record in records:
        for group in record["groups"]:
            assert len(group["docids"]) == 4
            assert len(group["texts"]) == 4
            assert group["logits"] == pytest.approx([20 * value for value in group["raw_scores"]])


def test_judged_query_positives_first(tmp_path):
    output, stats = write_dump(tmp_path)
    record = read_lines(output)[1]
    assert record["positive_source"] == "qrels"

    # Grades 2 before 1; "absent-doc" (grade 3) has no text and is counted, not used.
    positives = [group["docids"][0] for group in record["groups"]]
    assert positives == ["judged-pos-1", "judged-pos-1b"]
    assert stats.skipped["positives absent from the corpus"] == 1

    for group in record["groups"]:
        assert group["relevance"][0] >= 1
        negatives = group["docids"][1:]
        assert len(set(negatives)) == 3
        # Head negatives come from the top 10 of the run, skipping passages judged above 0.
        for docid in negatives:
            assert docid != "d1-4"
            assert int(docid.split("-")[1]) < 11
        assert group["texts"][0] == {"judged-pos-1": "red apple pie recipe", "judged-pos-1b": "apple pie"}[group["docids"][0]]


def test_unjudged_query_takes_teacher_best(tmp_path):
    output, _ = write_dump(tmp_path)
    record = read_lines(output)[3]
    assert record["qid"] == "3"
    assert record["positive_source"] == "teacher"
    assert len(record["groups"]) == 1
    group = record["groups"][0]
    assert group["raw_scores"][0] == max(group["raw_scores"])
    assert group["relevance"] == [None] * 4
    assert group["docids"][0] not in group["docids"][1:]


def test_sampling_is_seeded(tmp_path):
    first, _ = write_dump(tmp_path, name="a.jsonl")
    second, _ = write_dump(tmp_path, name="b.jsonl")
    other, _ = write_dump(tmp_path, name="c.jsonl", seed=7)
    assert first.read_text() == second.read_text()
    assert first.read_text() != other.read_text()


def test_random_negatives_reach_the_tail(tmp_path):
    output, _ = write_dump(tmp_path, negatives="random", group_size=12, max_positives=1)
    negatives = [docid for record in read_lines(output)[1:3] for docid in record["groups"][0]["docids"][1:]]
    assert any(int(docid.split("-")[1]) >= 10 for docid in negatives)


def test_resume_after_crash(tmp_path):
    reference, _ = write_dump(tmp_path, name="reference.jsonl")

    crashing = OverlapScorer(fail_after=2)
    with pytest.raises(RuntimeError, match="teacher crashed"):
        write_dump(tmp_path, scorer=crashing)
    output = tmp_path / "dump.jsonl"
    partial = tmp_path / "dump.jsonl.partial"
    assert not output.exists()
    assert len(read_lines(partial)) == 3

    # A crash in the middle of a write leaves a line without its end.
    with open(partial, "a", encoding="utf-8") as handle:
        handle.write('{"qid": "3", "query": "green')

    resumed = OverlapScorer()
    _, stats = write_dump(tmp_path, scorer=resumed)
    assert resumed.scored_queries == ["green tea"]
    assert stats.resumed == 2
    assert output.read_text() == reference.read_text()
    assert not partial.exists()


def test_complete_dump_is_kept(tmp_path):
    output, _ = write_dump(tmp_path)
    before = output.read_text()
    scorer = OverlapScorer()
    write_dump(tmp_path, scorer=scorer)
    assert scorer.calls == 0
    assert output.read_text() == before


def test_resume_rejects_other_settings(tmp_path):
    with pytest.raises(RuntimeError):
        write_dump(tmp_path, scorer=OverlapScorer(fail_after=1))
    with pytest.raises(dt.DumpFormatError, match="sampling settings"):
        write_dump(tmp_path, group_size=5)
    with pytest.raises(dt.DumpFormatError, match="teacher settings"):
        write_dump(tmp_path, scorer=OverlapScorer(kind="cross-encoder"))


def test_docid_absent_from_corpus(tmp_path):
    run, texts, qrels = make_inputs()
    del texts["d2-3"]
    sampling = dt.SamplingSettings(group_size=4)
    with pytest.raises(KeyError, match="d2-3.*qid 2"):
        dt.dump_teacher(run, TOPICS, DictSource(texts), OverlapScorer(), tmp_path / "a.jsonl", qrels, sampling)

    stats = dt.dump_teacher(
        run, TOPICS, DictSource(texts), OverlapScorer(), tmp_path / "b.jsonl", qrels, sampling, skip_missing=True
    )
    assert stats.skipped["run passages absent from the corpus"] == 1
    docids = {d for record in read_lines(tmp_path / "b.jsonl")[1:] for g in record["groups"] for d in g["docids"]}
    assert "d2-3" not in docids


def test_judged_query_without_positive(tmp_path):
    run, texts, qrels = make_inputs()
    qrels["2"] = {"d2-7": 0}
    output = tmp_path / "dump.jsonl"
    stats = dt.dump_teacher(run, TOPICS, DictSource(texts), OverlapScorer(), output, qrels, dt.SamplingSettings(group_size=4))
    assert stats.skipped["queries whose judgments contain no positive"] == 1
    assert read_lines(output)[2] == {"qid": "2", "skipped": True}

    teacher, groups = dt.read_dump(output)
    assert {group.qid for group in groups} == {"1", "3"}


def test_missing_topic(tmp_path):
    run, texts, qrels = make_inputs()
    with pytest.raises(KeyError, match="no topic"):
        dt.dump_teacher(run, {"1": "red apple pie"}, DictSource(texts), OverlapScorer(), tmp_path / "a.jsonl", qrels)


def test_cross_encoder_logits_unscaled(tmp_path):
    output, _ = write_dump(tmp_path, scorer=OverlapScorer(kind="cross-encoder"))
    header, record = read_lines(output)[:2]
    assert header["teacher"]["kind"] == "cross-encoder"
    assert header["teacher"]["logit_scale"] == 1.0
    group = record["groups"][0]
    assert group["logits"] == group["raw_scores"]


def test_read_dump_groups(tmp_path):
    output, stats = write_dump(tmp_path)
    teacher, groups = dt.read_dump(output)
    assert teacher["name"] == "overlap"
    assert len(groups) == stats.groups
    first = groups[0]
    assert first.qid == "1"
    assert first.query == "red apple pie"
    assert first.docids[0] == "judged-pos-1"
    assert len(first.logits) == 4


def test_read_dump_truncated_last_line(tmp_path, caplog):
    output, _ = write_dump(tmp_path)
    text = output.read_text()
    output.write_text(text[: len(text) - 40])
    with caplog.at_level(logging.WARNING):
        _, groups = dt.read_dump(output)
    assert "truncated last line" in caplog.text
    assert {group.qid for group in groups} == {"1", "2"}


def test_read_dump_invalid_middle_line(tmp_path):
    output, _ = write_dump(tmp_path)
    lines = output.read_text().splitlines(keepends=True)
    lines[1] = lines[1][:30] + "\n"
    output.write_text("".join(lines))
    with pytest.raises(dt.DumpFormatError, match="dump.jsonl:2: invalid JSON"):
        dt.read_dump(output)


def test_read_dump_group_lacking_positive(tmp_path):
    output, _ = write_dump(tmp_path)
    lines = read_lines(output)
    lines[1]["groups"][0]["relevance"][0] = 0
    output.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(dt.DumpFormatError, match="qid 1.*lacks a positive"):
        dt.read_dump(output)


def test_read_dump_wrong_group_length(tmp_path):
    output, _ = write_dump(tmp_path)
    lines = read_lines(output)
    lines[2]["groups"][0]["logits"].pop()
    output.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(dt.DumpFormatError, match="dump.jsonl:3.*expected 4 passages"):
        dt.read_dump(output)


def test_read_dumps_mismatched_teachers(tmp_path):
    first, _ = write_dump(tmp_path, name="a.jsonl")
    second, _ = write_dump(tmp_path, name="b.jsonl", scorer=OverlapScorer(kind="cross-encoder"))
    with pytest.raises(dt.DumpFormatError, match="b.jsonl:1: teacher"):
        dt.read_dump([first, second])


def test_read_dumps_mismatched_group_size(tmp_path):
    first, _ = write_dump(tmp_path, name="a.jsonl")
    second, _ = write_dump(tmp_path, name="b.jsonl", group_size=3)
    with pytest.raises(dt.DumpFormatError, match="group size 3"):
        dt.read_dump([first, second])


def test_read_dumps_concatenated(tmp_path, caplog):
    first, _ = write_dump(tmp_path, name="a.jsonl")
    second, _ = write_dump(tmp_path, name="b.jsonl", seed=3)
    joined = tmp_path / "joined.jsonl"
    joined.write_text(first.read_text() + second.read_text())
    with caplog.at_level(logging.WARNING):
        _, groups = dt.read_dump(joined)
    assert "3 qids appear more than once" in caplog.text
    _, alone = dt.read_dump(first)
    assert [g.docids for g in groups] == [g.docids for g in alone]


def test_read_unfinished_dump(tmp_path):
    with pytest.raises(RuntimeError):
        write_dump(tmp_path, scorer=OverlapScorer(fail_after=1))
    with pytest.raises(FileNotFoundError, match="has not finished"):
        dt.read_dump(tmp_path / "dump.jsonl")


def test_sampling_settings_validation():
    with pytest.raises(ValueError, match="group size"):
        dt.SamplingSettings(group_size=1)
    with pytest.raises(ValueError, match="negatives"):
        dt.SamplingSettings(negatives="tail")


def test_batch_size_does_not_change_teacher():
    first = {"name": "t", "kind": "cross-encoder", "logit_scale": 1.0, "settings": {"batch_size": 64, "dtype": "float32"}}
    other_batch = {**first, "settings": {"batch_size": 8, "device": "cuda", "dtype": "float32"}}
    other_dtype = {**first, "settings": {"batch_size": 64, "dtype": "bfloat16"}}
    assert dt.same_teacher(first, other_batch)
    assert not dt.same_teacher(first, other_dtype)
