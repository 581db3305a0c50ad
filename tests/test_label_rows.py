from diver.datasets.model import label_rows


def test_label_rows_reads_queries_qrels_excluded_and_notes():
    rows = [
        {"id": 1, "query": "q one", "gold": ["a", "b"], "excluded_ids": ["b"], "reasoning": "leak"},
        {"id": "2", "query": "q two", "gold": [], "excluded_ids": "[]"},
    ]
    labels = label_rows(
        rows,
        lambda row: row["gold"],
        lambda qid, rel, excl: f"{qid}: {sorted(rel & excl)}" if rel & excl else (None if rel else f"{qid}: none"),
    )
    assert labels.queries == {"1": "q one", "2": "q two"}
    assert labels.qrels == {"1": {"a": 1, "b": 1}, "2": {}}
    assert labels.excluded == {"1": {"b"}, "2": set()}
    assert labels.notes == ["1: ['b']", "2: none"]
