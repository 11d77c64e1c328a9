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


def test_objects_of_exports_the_log_does_not_hold_are_counted_and_their_exports_named() -> None:
    """After a restore from an older backup, the exports requested since it was taken have objects in
    the store and no events in the log: the janitor leaves them (written since the log's oldest event,
    they did not age out of it), and said nothing — they stayed unseen for good. Now the line counts
    them and names their exports (five of them, then how many more)."""
    few = Summary(unaccounted={("t1", "exp_b"): 2, ("t1", "exp_a"): 3}).line(False)
    assert few.endswith(", not deleted: 5 objects of 2 exports the log does not hold (t1/exp_a, t1/exp_b; written "
                        "since its oldest event, so not aged out of it: after a restore from an older backup, the "
                        "exports requested since it was taken — see the README's *The janitor*)")
    many = Summary(unaccounted={("t2", f"exp_{i}"): 1 for i in range(7)}).line(True)
    assert "(t2/exp_0, t2/exp_1, t2/exp_2, t2/exp_3, t2/exp_4 and 2 more; written" in many
    assert "not deleted" not in Summary().line(False)
