"""How a janitor run says what it did: pure, no bus, no store."""

from __future__ import annotations

from services.janitor.summary import Summary, told


def test_an_action_is_said_done_once_done_and_would_be_done_in_a_dry_run() -> None:
    assert told("expire exp_1 (exports/t1/exp_1/a.zip)", False) == "expired exp_1 (exports/t1/exp_1/a.zip)"
    assert told("abort upload u1 of k", False) == "aborted upload u1 of k"
    assert told("remove", False) == "removed"
    assert told("expire exp_1 (k)", True) == "would expire exp_1 (k)"


def test_the_summary_line_says_only_the_counts_there_are_and_why_it_stopped() -> None:
    line = Summary(expired=2, cleaned=3).line(False)
    assert line == ("janitor: expired 2 archives (deleted), aborted 0 uploads, failed 0 stuck exports, "
                    "completed 0 cancels, removed 3 work objects")
    dry = Summary(unoffered=1, forgotten=4, left=1, stopped="the store").line(True)
    assert dry.startswith("janitor: would expire 0 archives (deleting them), would abort 0 uploads")
    assert ", would delete 1 archives of exports that did not complete" in dry
    assert ", would delete 4 objects of exports no longer in the log" in dry
    assert dry.endswith("; 1 left for the next run (an error: see the log)"
                        "; stopped before the end by the object store (see stderr)")
