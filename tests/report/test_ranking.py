"""Leaderboard ranks with ties: overlapping 95 % intervals share a rank, separated ones do not.

The records here are FIXTURES: made-up numbers, nothing was measured.
"""

from pathlib import Path

import pandas as pd

from lizard_bench.report.ranking import Entry, ranking_table, tie_ranks
from tests.report.fixtures import record
from tests.report.test_report_command import parse


def frame_of(records) -> pd.DataFrame:
    from lizard_bench.report.loading import records_frame
    from lizard_bench.report.runs import Run

    return records_frame([Run(run_id="fixture", path=Path("fixture"), records=records)])


def ranked(table) -> list[tuple[str, str, str]]:
    return [(row["rank"], row["variant"], row["value"]) for row in table.display.to_dict("records")]


def test_overlapping_intervals_share_a_rank():
    # FIXTURE: piqa 74.8 ± 1.96·1.1 and 74.1 ± 1.96·1.1 overlap; 60.0 ± 1.96·1.1 is clear of both
    records = [record(variant, "piqa", "acc", value, stderr=0.011)
               for variant, value in (("softmax", 0.741), ("lizard", 0.748), ("lolcats", 0.600))]
    table = ranking_table(frame_of(records))
    assert ranked(table) == [("=1", "lizard", "74.8 [72.6, 77.0]"), ("=1", "softmax", "74.1 [71.9, 76.3]"),
                             ("3", "lolcats", "60.0 [57.8, 62.2]")]


def test_clearly_separated_variants_get_distinct_ranks_and_lower_is_better():
    # FIXTURE: perplexities 11.5, 12.9, 13.6 with stderr 0.1: no interval overlaps
    records = [record(variant, "corpus_perplexity", "perplexity", value, direction="lower", stderr=0.1)
               for variant, value in (("lolcats", 13.6), ("softmax", 11.5), ("lizard", 12.9))]
    assert [(rank, variant) for rank, variant, _ in ranked(ranking_table(frame_of(records)))] == [
        ("1", "softmax"), ("2", "lizard"), ("3", "lolcats")]


def test_recorded_interval_is_used_and_ties_chain():
    # FIXTURE: a 0/2 passkey cell has stderr 0 but a Wilson interval [0, 0.6576]; it ties with 1/2
    one, none = {"ci_low": 0.0945, "ci_high": 0.9055}, {"ci_low": 0.0, "ci_high": 0.6576}
    assert [rank for rank, _ in tie_ranks([Entry(("a",), 0.5, (0.0945, 0.9055)), Entry(("b",), 0.0, (0.0, 0.6576))],
                                          "higher")] == ["=1", "=1"]
    # chaining: a overlaps b and b overlaps c, so all three share rank 1 though a and c do not overlap
    chain = [Entry(("a",), 10.0, (9.0, 11.0)), Entry(("b",), 8.5, (7.5, 9.5)), Entry(("c",), 7.0, (6.0, 8.0)),
             Entry(("d",), 3.0, None)]
    assert [(rank, e.row[0]) for rank, e in tie_ranks(chain, "higher")] == [
        ("=1", "a"), ("=1", "b"), ("=1", "c"), ("4", "d")]
    records = [record("softmax", "passkey", "exact_match", 0.5, stderr=0.5, details=one),
               record("lizard", "passkey", "exact_match", 0.0, stderr=0.0, details=none)]
    assert ranked(ranking_table(frame_of(records))) == [("=1", "softmax", "50.0 [9.4, 90.5]"),
                                                        ("=1", "lizard", "0.0 [0.0, 65.8]")]


def test_leaderboard_shows_the_ranking_after_the_main_table(fixture_reports):
    text = fixture_reports["leaderboard"].read_text()
    page = parse(text)
    assert page.tables.index("table-ranking") == page.tables.index("table-main") + 1
    assert "=1" in page.cells and "74.8 [72.6, 77.0]" in page.cells
