"""The listwise reranking loop, with a scripted model and a tiny random Llama."""

import json
import re
from types import SimpleNamespace

import pytest
import torch

from dear_ir.candidates import Candidates, Passage
from dear_ir.listwise.first_token import identifier_token_ids
from dear_ir.listwise.prompt import build_messages, render_prompt
from dear_ir.listwise.rerank import ListwiseReranker
from tests.conftest import tiny_chat_config

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer_folder):
    """The offline SmolLM2 tokenizer (see conftest.py)."""
    return transformers.AutoTokenizer.from_pretrained(smollm2_tokenizer_folder)


# ChatML renders each passage as its own user turn: "<|im_start|>user\n[3] text<|im_end|>".
PASSAGE_TURN = re.compile(r"<\|im_start\|>user\n\[(\d+)\] (.*?)<\|im_end\|>", re.DOTALL)
GRADE = re.compile(r"grade (\d+)")


def prompt_passages(tokenizer, input_ids, attention_mask=None):
    """Return the passage texts that each rendered prompt of a batch lists, in identifier order."""
    batch = []
    for row, ids in enumerate(input_ids.tolist()):
        if attention_mask is not None:
            ids = [token for token, keep in zip(ids, attention_mask[row].tolist()) if keep]
        text = tokenizer.decode(ids)
        batch.append([passage for _, passage in PASSAGE_TURN.findall(text)])
    return batch


def by_grade(passages):
    """Answer with the identifiers sorted by the 'grade N' in each text, highest first."""
    grades = [int(GRADE.search(passage).group(1)) for passage in passages]
    order = sorted(range(len(passages)), key=lambda i: -grades[i])
    return " > ".join(f"[{i + 1}]" for i in order)


class ScriptedModel:
    """A stand-in causal LM whose answer is a function of the passages in the prompt.

    `answer` maps the window's passage texts to the answer text for `generate`;
    `logits` maps them to one logit per identifier for the forward call.
    `prompts` collects the passages of every window, and `calls` the batch
    size of every model call.
    """

    device = torch.device("cpu")

    def __init__(self, tokenizer, answer=by_grade, logits=None):
        self.tokenizer = tokenizer
        self.answer = answer
        self.logits = logits
        self.generation_config = SimpleNamespace(eos_token_id=tokenizer.eos_token_id)
        self.config = SimpleNamespace(max_position_embeddings=1_000_000)
        self.prompts = []
        self.calls = []

    def eval(self):
        return self

    def generate(self, input_ids, attention_mask, max_new_tokens, eos_token_id, pad_token_id, **options):
        batch = prompt_passages(self.tokenizer, input_ids, attention_mask)
        self.prompts.extend(batch)
        self.calls.append(len(batch))
        answers = []
        for passages in batch:
            answer_ids = self.tokenizer(self.answer(passages), add_special_tokens=False)["input_ids"]
            answers.append((answer_ids + [eos_token_id[0]])[:max_new_tokens])
        width = max(len(answer) for answer in answers)
        padded = [answer + [pad_token_id] * (width - len(answer)) for answer in answers]
        generated = torch.cat([input_ids, torch.tensor(padded, dtype=torch.long)], dim=1)
        # As generate does, ask the stopping criteria after each token and end when every row is done.
        criteria = options.get("stopping_criteria")
        for length in range(1, width + 1):
            prefix = generated[:, : input_ids.shape[1] + length]
            if criteria and criteria(prefix, None).all():
                return prefix
        return generated

    def __call__(self, input_ids, attention_mask, position_ids, logits_to_keep=0):
        # Each prompt ends with the answer's "[" that the reranker appends.
        batch = prompt_passages(self.tokenizer, input_ids[:, :-1], attention_mask[:, :-1])
        self.prompts.extend(batch)
        self.calls.append(len(batch))
        vocabulary = torch.full((len(batch), 1, len(self.tokenizer)), -100.0)
        for row, passages in enumerate(batch):
            identifier_ids = identifier_token_ids(self.tokenizer, len(passages))
            vocabulary[row, 0, identifier_ids] = torch.tensor(self.logits(passages), dtype=torch.float)
        return SimpleNamespace(logits=vocabulary)


def make_candidates(grades, qid="q1"):
    """Candidates d0, d1, ... in input order, with first-stage scores 100, 99, ..."""
    passages = [Passage(f"d{i}", f"passage d{i} grade {grade}", 100.0 - i) for i, grade in enumerate(grades)]
    return Candidates(qid, "which passage is best", passages)


def docids(candidates):
    return [passage.docid for passage in candidates.passages]


def assert_strictly_decreasing(candidates):
    scores = [passage.score for passage in candidates.passages]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores


def test_rerank_sorts_single_window(tokenizer):
    model = ScriptedModel(tokenizer)
    reranked = ListwiseReranker(model, tokenizer).rerank(make_candidates([0, 3, 1, 2, 0, 3, 1]))
    assert docids(reranked) == ["d1", "d5", "d3", "d2", "d6", "d0", "d4"]
    assert len(model.prompts) == 1
    assert_strictly_decreasing(reranked)


def test_rerank_reversed_ranking(tokenizer):
    def reverse(passages):
        return " > ".join(f"[{i}]" for i in range(len(passages), 0, -1))

    model = ScriptedModel(tokenizer, answer=reverse)
    reranked = ListwiseReranker(model, tokenizer).rerank(make_candidates([0] * 7))
    assert docids(reranked) == ["d6", "d5", "d4", "d3", "d2", "d1", "d0"]
    assert_strictly_decreasing(reranked)


def test_rerank_rank100_reaches_top(tokenizer):
    model = ScriptedModel(tokenizer)
    reranker = ListwiseReranker(model, tokenizer, window=20, step=10, rank_end=100)
    reranked = reranker.rerank(make_candidates([0] * 99 + [1]))

    assert docids(reranked)[0] == "d99"
    assert docids(reranked)[1:] == [f"d{i}" for i in range(99)]
    assert len(model.prompts) == 9
    assert reranker.stats.per_query["q1"]["windows"] == 9


def test_rerank_windows_see_moved_passages(tokenizer):
    model = ScriptedModel(tokenizer)
    ListwiseReranker(model, tokenizer).rerank(make_candidates([0] * 24 + [1]))

    # Windows [5, 25) then [0, 15): the second prompt lists the winner of the first.
    assert len(model.prompts) == 2
    assert len(model.prompts[0]) == 20
    assert len(model.prompts[1]) == 15
    assert model.prompts[1][5] == "passage d24 grade 1"


def test_rerank_keeps_tail_below_head(tokenizer):
    model = ScriptedModel(tokenizer)
    reranker = ListwiseReranker(model, tokenizer, window=4, step=2, rank_end=6)
    reranked = reranker.rerank(make_candidates([0, 0, 0, 0, 0, 5, 9, 9]))

    assert docids(reranked)[:6] == ["d5", "d0", "d1", "d2", "d3", "d4"]
    assert docids(reranked)[6:] == ["d6", "d7"]
    assert [p.score for p in reranked.passages][6:] == [94.0, 93.0]
    assert_strictly_decreasing(reranked)


@pytest.mark.parametrize(
    "answer, order, repairs",
    [
        ("[2] > [2] > [9]", ["d1", "d0", "d2"], {"duplicate": 1, "out_of_range": 1, "missing": 2}),
        ("I cannot rank these", ["d0", "d1", "d2"], {"no_identifiers": 1, "missing": 3}),
        ("", ["d0", "d1", "d2"], {"empty": 1, "missing": 3}),
        ("<think>[3] > [2] > [1] looks right but", ["d0", "d1", "d2"], {"unclosed_think": 1, "missing": 3}),
    ],
)
def test_rerank_repairs_answers(tokenizer, answer, order, repairs):
    model = ScriptedModel(tokenizer, answer=lambda passages: answer)
    reranker = ListwiseReranker(model, tokenizer)
    reranked = reranker.rerank(make_candidates([0, 0, 0]))

    assert docids(reranked) == order
    assert reranker.records[0]["repairs"] == repairs
    assert reranker.stats.repaired_windows == 1
    assert dict(reranker.stats.repairs) == repairs
    assert_strictly_decreasing(reranked)


@pytest.mark.parametrize("stop_when_ranked, raw_answer, repairs", [
    (True, "[2] > [1] > [3]", {}),
    (False, "[2] > [1] > [3] > [2] > [1]", {"duplicate": 2}),
])
def test_stop_when_ranked_same_order(tokenizer, stop_when_ranked, raw_answer, repairs):
    model = ScriptedModel(tokenizer, answer=lambda passages: "[2] > [1] > [3] > [2] > [1]")
    reranker = ListwiseReranker(model, tokenizer, stop_when_ranked=stop_when_ranked)
    reranked = reranker.rerank(make_candidates([0, 0, 0]))

    assert docids(reranked) == ["d1", "d0", "d2"]
    assert reranker.records[0]["raw_answer"] == raw_answer
    assert reranker.records[0]["repairs"] == repairs


def test_stop_when_ranked_skips_reasoning(tokenizer):
    # Identifiers inside <think> name passages under discussion, so they must not stop generation.
    answer = "<think>[1] [2] [3] all mention it.</think> [3] > [1] > [2]"
    model = ScriptedModel(tokenizer, answer=lambda passages: answer)
    reranker = ListwiseReranker(model, tokenizer)
    reranked = reranker.rerank(make_candidates([0, 0, 0]))

    assert reranker.records[0]["raw_answer"] == answer
    assert docids(reranked) == ["d2", "d0", "d1"]


def test_stop_when_ranked_batch_rows(tokenizer):
    # One row stops early; the other ends at its end-of-sequence token.
    answers = {"passage d0 grade 1": "[1] > [2] > [1] > [2]", "passage d0 grade 0": "[2]"}
    model = ScriptedModel(tokenizer, answer=lambda passages: answers[passages[0]])
    reranker = ListwiseReranker(model, tokenizer, batch_size=2)
    reranker.rerank_all([make_candidates([1, 0], qid="q1"), make_candidates([0, 0], qid="q2")], progress=False)

    records = {record["qid"]: record for record in reranker.records}
    assert records["q1"]["raw_answer"] == "[1] > [2]"
    assert records["q1"]["repairs"] == {}
    assert records["q2"]["raw_answer"] == "[2]"
    assert records["q2"]["repairs"] == {"missing": 1}


def test_rerank_sidecar_records(tokenizer, tmp_path):
    model = ScriptedModel(tokenizer, answer=lambda passages: "<think>[2] names it.</think>\n[2] > [1]")
    reranker = ListwiseReranker(model, tokenizer)
    reranker.rerank_all([make_candidates([0, 0], qid="q1"), make_candidates([0, 0, 0], qid="q2")], progress=False)
    path = reranker.write_sidecar(tmp_path / "dear-l.jsonl")

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [row["qid"] for row in rows] == ["q1", "q2"]
    assert rows[1]["docids"] == ["d0", "d1", "d2"]
    assert rows[1]["permutation"] == [2, 1, 3]
    assert rows[1]["repairs"] == {"missing": 1}
    assert rows[1]["reasoning"] == "[2] names it."
    assert rows[1]["raw_answer"].startswith("<think>")
    assert rows[1]["prompt_tokens"] > 0
    assert rows[1]["forward_passes"] == rows[1]["new_tokens"] > 0
    assert reranker.stats.queries == 2
    assert reranker.stats.per_query["q2"]["forward_passes"] == rows[1]["forward_passes"]


def test_rerank_small_query_untouched(tokenizer):
    model = ScriptedModel(tokenizer)
    reranked = ListwiseReranker(model, tokenizer).rerank(make_candidates([3]))
    assert docids(reranked) == ["d0"]
    assert model.prompts == []


def test_first_token_ranks_by_logits(tokenizer):
    def logits(passages):
        return [float(GRADE.search(passage).group(1)) for passage in passages]

    model = ScriptedModel(tokenizer, logits=logits)
    reranker = ListwiseReranker(model, tokenizer, window=6, step=3, first_token=True)
    reranked = reranker.rerank(make_candidates([0, 2, 0, 1, 0, 0, 0, 0, 3]))

    # Windows [3, 9) then [0, 6): d8 climbs to rank 1 in two forward passes.
    assert docids(reranked)[:3] == ["d8", "d1", "d3"]
    assert reranker.stats.forward_passes == 2
    assert reranker.records[0]["logits"] == [1.0, 0.0, 0.0, 0.0, 0.0, 3.0]


def test_first_token_rejects_split_identifiers(tokenizer):
    # SmolLM2 writes "[10]" as "[", "1", "0", so identifiers from 10 up share a first token.
    with pytest.raises(ValueError, match=r"identifier 10 .*window of at most 9"):
        ListwiseReranker(ScriptedModel(tokenizer), tokenizer, window=20, first_token=True)


def test_identifier_tokens_multi_digit():
    tokenizers = pytest.importorskip("tokenizers")
    vocabulary = {"[UNK]": 0, "[": 1, **{str(number): number + 1 for number in range(1, 21)}}
    model = tokenizers.models.WordLevel(vocabulary, unk_token="[UNK]")
    backend = tokenizers.Tokenizer(model)
    # Digits grouped as one token, as Llama-3's pre-tokenizer groups up to three digits.
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Split(
        tokenizers.Regex(r"\d{1,3}|\["), behavior="isolated"
    )
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    assert identifier_token_ids(tokenizer, 20) == list(range(2, 22))


@pytest.fixture(scope="module")
def tiny_llama(tokenizer):
    torch.manual_seed(0)
    config = tiny_chat_config(tokenizer)
    model = transformers.LlamaForCausalLM(config)
    # Sampling options as an instruct model's generation config may set them.
    model.generation_config.do_sample = True
    model.generation_config.temperature = 0.6
    return model


def test_tiny_llama_greedy_deterministic(tokenizer, tiny_llama):
    candidates = make_candidates([0, 1, 2, 3])
    answers = []
    for _ in range(2):
        reranker = ListwiseReranker(tiny_llama, tokenizer, max_new_tokens=8)
        reranked = reranker.rerank(candidates)
        answers.append(reranker.records[0]["raw_answer"])
        assert sorted(docids(reranked)) == ["d0", "d1", "d2", "d3"]
        assert reranker.stats.forward_passes == reranker.records[0]["new_tokens"] <= 8
    assert answers[0] == answers[1]


def test_tiny_llama_sampling_seeded(tokenizer, tiny_llama):
    candidates = make_candidates([0, 1, 2, 3])

    def sample(seed):
        reranker = ListwiseReranker(tiny_llama, tokenizer, max_new_tokens=8, do_sample=True, seed=seed)
        reranker.rerank(candidates)
        return reranker.records[0]["raw_answer"]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_tiny_llama_first_token(tokenizer, tiny_llama):
    reranker = ListwiseReranker(tiny_llama, tokenizer, window=5, step=2, first_token=True)
    reranked = reranker.rerank(make_candidates([0] * 7))
    assert sorted(docids(reranked)) == [f"d{i}" for i in range(7)]
    assert reranker.stats.forward_passes == 2
    assert len(reranker.records[1]["logits"]) == 5
    assert_strictly_decreasing(reranked)


def test_batch_matches_single_queries(tokenizer):
    grades = [[0] * 99 + [1], [0] * 24 + [2], [1, 0, 3, 0, 0, 2, 0], [5], [0] * 29 + [4]]
    queries = [make_candidates(query_grades, qid=f"q{i}") for i, query_grades in enumerate(grades)]

    single = [ListwiseReranker(ScriptedModel(tokenizer), tokenizer).rerank(query) for query in queries]
    model = ScriptedModel(tokenizer)
    reranker = ListwiseReranker(model, tokenizer, batch_size=3)
    batched = reranker.rerank_all(queries, progress=False)

    assert [docids(query) for query in batched] == [docids(query) for query in single]
    assert [[p.score for p in query.passages] for query in batched] == [[p.score for p in query.passages] for query in single]
    # Windows per query: 9, 2, 1, 0 and 2. q3 and q4 take the place of q2 after its one
    # window, and q0 runs alone once q1 and q4 are done.
    assert model.calls == [3, 3, 2, 1, 1, 1, 1, 1, 1]
    assert reranker.stats.windows == 14
    assert reranker.stats.queries == 5
    assert reranker.stats.per_query["q3"]["windows"] == 0
    assert [record["batch"] for record in reranker.records if record["qid"] == "q0"] == [3, 3, 2, 1, 1, 1, 1, 1, 1]
    assert [query.qid for query in batched] == ["q0", "q1", "q2", "q3", "q4"]


def test_first_token_batched(tokenizer):
    def logits(passages):
        return [float(GRADE.search(passage).group(1)) for passage in passages]

    queries = [make_candidates([0, 0, 1, 0, 2], qid="a"), make_candidates([3, 0, 0, 0, 0, 0, 0, 9], qid="b")]
    model = ScriptedModel(tokenizer, logits=logits)
    reranker = ListwiseReranker(model, tokenizer, window=6, step=3, first_token=True, batch_size=2)
    reranked = reranker.rerank_batch(queries)

    assert docids(reranked[0]) == ["d4", "d2", "d0", "d1", "d3"]
    assert docids(reranked[1])[:2] == ["d7", "d0"]
    # Query a has the window [0, 5), and query b has [2, 8) then [0, 6).
    assert model.calls == [2, 1]


def test_sidecar_append(tokenizer, tmp_path):
    model = ScriptedModel(tokenizer)
    reranker = ListwiseReranker(model, tokenizer)
    path = tmp_path / "reasoning.jsonl"

    reranker.rerank(make_candidates([0, 1], qid="q1"))
    reranker.write_sidecar(path, append=True)
    reranker.rerank(make_candidates([0, 1], qid="q2"))
    reranker.write_sidecar(path, append=True)
    reranker.write_sidecar(path, append=True)

    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [row["qid"] for row in rows] == ["q1", "q2"]


def test_rerank_prompt_too_long(tokenizer):
    model = ScriptedModel(tokenizer)
    model.config.max_position_embeddings = 100
    with pytest.raises(ValueError, match=r"qid q1 window 0 \[0, 3\).*100 positions"):
        ListwiseReranker(model, tokenizer).rerank(make_candidates([0, 1, 2]))


def test_rerank_caps_new_tokens(tokenizer, caplog):
    model = ScriptedModel(tokenizer)
    prompt_tokens = len(render_prompt(tokenizer, build_messages("which passage is best", [
        f"passage d{i} grade {grade}" for i, grade in enumerate([0, 1, 2])
    ])).input_ids)
    model.config.max_position_embeddings = prompt_tokens + 3
    reranker = ListwiseReranker(model, tokenizer, max_new_tokens=1024)
    reranker.rerank(make_candidates([0, 1, 2]))

    assert reranker.records[0]["new_tokens"] == 3
    assert "leave room for 3 of the 1024 new tokens" in caplog.text


def test_tiny_llama_batched_generation(tokenizer, tiny_llama):
    reranker = ListwiseReranker(tiny_llama, tokenizer, max_new_tokens=6, batch_size=2)
    reranked = reranker.rerank_batch([make_candidates([0] * 4, qid="a"), make_candidates([0] * 7, qid="b")])
    assert sorted(docids(reranked[1])) == [f"d{i}" for i in range(7)]
    assert [record["batch"] for record in reranker.records] == [2, 2]
    assert all(0 < record["new_tokens"] <= 6 for record in reranker.records)


def test_tiny_llama_first_token_padding(tokenizer, tiny_llama):
    short, long = make_candidates([0] * 3, qid="a"), make_candidates([0] * 5, qid="b")
    single = ListwiseReranker(tiny_llama, tokenizer, window=5, step=2, first_token=True)
    single.rerank(short)
    single.rerank(long)
    batched = ListwiseReranker(tiny_llama, tokenizer, window=5, step=2, first_token=True, batch_size=2)
    batched.rerank_batch([short, long])

    # Left padding with matching position ids leaves the logits as without padding.
    for alone, together in zip(single.records, batched.records):
        assert together["qid"] == alone["qid"]
        assert together["logits"] == pytest.approx(alone["logits"], abs=1e-4)
