"""The fault ledger alone (server/front/ledger.py): deaths in, verdicts out, on a clock the test
turns. Each scenario of the real-server fault tests (tests/test_worker_hardening.py,
tests/test_faults.py) is here as the deaths it makes, plus the edge cases of the policy."""

import pytest

from server.front.ledger import (
    INTERRUPTED_LOADS,
    QUARANTINE_WINDOW_SECONDS,
    Death,
    FaultLedger,
    Work,
    replace_for_hung_threads,
)

SLOT = ("sklearn", 0)
INNOCENTS = [f"innocent-{i}" for i in range(12)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ledger(clock):
    return FaultLedger(clock)


def death(*invoking: str, loading: tuple[str, ...] = (), slot=SLOT) -> Death:
    return Death(slot, frozenset(invoking) | frozenset(loading), frozenset(invoking))


# ---------------------------------------------------------------------------- what a death says


def test_a_death_names_only_what_its_threads_were_running():
    """Frames 1-3 were sent; the worker's threads ran 1 (an invoke) and 3 (a load); 2 only waited."""
    in_flight = {1: Work("poison", load=False), 2: Work("neighbour", load=False), 3: Work("loading", load=True)}
    died = Death.of(SLOT, in_flight, running_ids={1, 3, 99})  # 99: answered just before the end
    assert died.running == {"poison", "loading"} and died.invoking == {"poison"}
    assert died.suspects == {"poison"}  # invokes are suspected before loads
    assert died.started("poison") and died.started("loading")
    assert not died.started("neighbour") and not died.started(None)  # sent again after the reload
    assert not died.alone("loading") and Death(SLOT, frozenset({"loading"})).alone("loading")


def test_the_loads_are_the_suspects_when_it_ran_no_invoke():
    assert death(loading=("a", "b")).suspects == {"a", "b"}


def test_a_death_with_nothing_running_blames_no_one(ledger):
    for _ in range(5):
        verdict = ledger.died(Death(SLOT), held=["a", "b"])
        assert verdict.blamed == {} and verdict.quarantined == set() and verdict.forgiven is None
    assert ledger.record("a").deaths == [] and Death(SLOT).alone("a")  # a load there was all it ran


# ---------------------------------------------------------------------------- the poison model


def test_a_poison_model_alone_is_quarantined_at_its_second_death(ledger, clock):
    """test_a_poison_model_is_quarantined_and_its_neighbours_keep_serving"""
    first = ledger.died(death("poison"), held=["plain", "poison"])
    assert first.blamed == {"poison": 1.0} and first.quarantined == set()
    clock.advance(1)
    second = ledger.died(death("poison"), held=["plain", "poison"])
    assert second.quarantined == {"poison"} and second.culprit == "poison" and second.forgiven == SLOT
    assert ledger.quarantined("poison") and not ledger.quarantined("plain")
    assert ledger.record("plain").deaths == []
    assert (len(ledger.record("poison").deaths), ledger.record("poison").blame) == (2, 2.0)


def test_a_poison_among_12_innocents_that_only_waited_takes_the_blame_alone(ledger, clock):
    """The innocents have requests queued in the worker at each death; only the poison ran."""
    held = INNOCENTS + ["poison"]
    for _ in range(2):
        verdict = ledger.died(death("poison"), held=held)
        assert set(verdict.blamed) == {"poison"}
        clock.advance(2)
    assert verdict.quarantined == {"poison"}
    assert not [m for m in INNOCENTS if ledger.quarantined(m) or ledger.record(m).deaths]


def test_a_poison_among_12_busy_innocents_is_named_at_its_second_death(ledger, clock):
    """Under load three innocents run beside the poison at each death, never the same ones twice:
    the poison is the one model running at both, and goes at once; every innocent is kept."""
    held = INNOCENTS + ["poison"]
    first = ledger.died(death("poison", *INNOCENTS[0:3]), held=held)
    assert first.quarantined == set() and first.blamed == {m: 0.25 for m in ["poison", *INNOCENTS[0:3]]}
    clock.advance(1)
    second = ledger.died(death("poison", *INNOCENTS[3:6]), held=held)
    assert second.quarantined == {"poison"} and second.culprit == "poison" and second.forgiven == SLOT
    assert not [m for m in INNOCENTS if ledger.quarantined(m)]
    assert max(ledger.record(m).blame for m in INNOCENTS) == 0.25


def test_a_storm_of_deaths_quarantines_the_poison_and_no_innocent(ledger, clock):
    """The poison kills each new worker while two innocents serve beside it and the ten others are
    still reloading there (loads are not held, nor suspected beside invokes); then, the poison
    gone, the worker is killed from outside twice while all twelve reload. The poison goes at its
    second death; no innocent is quarantined, and every innocent's cut-short reload is retried."""
    pairs = [INNOCENTS[0:2], INNOCENTS[2:4]]
    storm = [death("poison", *pair, loading=tuple(m for m in INNOCENTS if m not in pair)) for pair in pairs]
    storm += [death(loading=tuple(INNOCENTS))] * 2
    quarantined: set[str] = set()
    verdicts = []
    for died in storm:
        serving = died.invoking | ({"poison"} - quarantined)
        verdicts.append(ledger.died(died, held=sorted(serving)))
        quarantined |= verdicts[-1].quarantined
        assert all(ledger.retry_load(m, alone=False) for m in died.running - died.invoking)
        clock.advance(1)
    assert [v.quarantined for v in verdicts] == [set(), {"poison"}, set(), set()]
    assert max(ledger.record(m).blame for m in INNOCENTS) == pytest.approx(1 / 3)
    assert not [m for m in INNOCENTS if ledger.quarantined(m)]


def test_deaths_beside_others_then_alone_quarantine_the_poison_with_the_blame_it_shared(ledger, clock):
    """test_the_blame_of_a_death_is_shared_by_the_models_running_at_it: a slow neighbour runs
    beside the poison at two deaths (half the blame of each), the poison alone at a third."""
    for _ in range(2):
        assert ledger.died(death("slow", "poison"), held=["slow", "poison"]).quarantined == set()
        clock.advance(1)
    assert ledger.record("poison").blame == ledger.record("slow").blame == 1.0
    third = ledger.died(death("poison"), held=["slow", "poison"])
    assert third.quarantined == {"poison"} and third.culprit == "poison"
    assert (len(ledger.record("poison").deaths), ledger.record("poison").blame) == (3, 2.0)  # the log line's figures
    assert not ledger.quarantined("slow") and ledger.record("slow").blame == 1.0


def test_the_one_model_running_at_both_of_two_deaths_goes_and_its_slot_is_forgiven(ledger, clock):
    """test_the_one_model_running_at_both_of_two_deaths_is_quarantined"""
    held = ["a", "b", "poison"]
    assert ledger.died(death("a", "poison"), held=held).forgiven is None
    clock.advance(1)
    verdict = ledger.died(death("b", "poison"), held=held)
    assert (verdict.quarantined, verdict.culprit, verdict.forgiven) == ({"poison"}, "poison", SLOT)
    assert not ledger.quarantined("a") and not ledger.quarantined("b")
    # The slot's history started again: the next death, of two, names no one.
    clock.advance(1)
    assert ledger.died(death("a", "b"), held=["a", "b"]).culprit is None


def test_known_limit_a_neighbour_running_at_every_death_shares_the_poisons_fate(ledger, clock):
    """Co-occurrence cannot tell a neighbour that is always running (a hot model with a request
    in a thread at every moment) from the poison: they share each death's blame equally and are
    quarantined together at the fourth death. Documented, not desired."""
    verdicts = []
    for _ in range(4):
        verdicts.append(ledger.died(death("always", "poison"), held=["always", "poison"]))
        clock.advance(1)
    assert [v.quarantined for v in verdicts] == [set(), set(), set(), {"always", "poison"}]
    assert all(v.culprit is None for v in verdicts)


def test_a_third_of_each_of_six_deaths_makes_two_whole_strikes(ledger, clock):
    """Shares are fractions: six thirds sum to a hair under 2.0 in floating point, and count as 2."""
    models = ["a", "b", "c"]
    for _ in range(6):
        verdict = ledger.died(death(*models), held=models)
        clock.advance(1)
    assert verdict.quarantined == set(models)
    assert ledger.record("a").blame < 2.0


# ---------------------------------------------------------------------------- what is held


def test_only_the_held_suspects_are_blamed(ledger):
    """A suspect unloaded (or quarantined) by the time its worker's death is heard has no record."""
    verdict = ledger.died(death("gone", "here"), held=["here", "bystander"])
    assert verdict.blamed == {"here": 0.5}
    assert ledger.record("gone").deaths == [] and ledger.record("bystander").deaths == []


def test_deaths_of_another_slot_do_not_name_a_culprit(ledger, clock):
    """Each slot's history is its own; the model's blame still adds up across slots."""
    ledger.died(death("a", "poison", slot=("sklearn", 0)), held=["a", "poison"])
    clock.advance(1)
    verdict = ledger.died(death("b", "poison", slot=("sklearn", 1)), held=["b", "poison"])
    assert verdict.culprit is None and verdict.quarantined == set()
    assert ledger.record("poison").blame == 1.0


def test_a_death_with_nothing_running_breaks_the_chain_but_not_the_blame(ledger, clock):
    """A kill from outside between two deaths of the poison: no culprit is named, but the poison
    still has two strikes."""
    held = ["plain", "poison"]
    ledger.died(death("poison"), held=held)
    clock.advance(1)
    assert ledger.died(Death(SLOT), held=held).blamed == {}
    clock.advance(1)
    verdict = ledger.died(death("poison"), held=held)
    assert verdict.culprit is None and verdict.forgiven is None and verdict.quarantined == {"poison"}


# ---------------------------------------------------------------------------- the window


@pytest.mark.parametrize(("apart", "quarantined"), [(QUARANTINE_WINDOW_SECONDS - 1, True), (QUARANTINE_WINDOW_SECONDS, False)])
def test_deaths_count_within_the_window_only(ledger, clock, apart, quarantined):
    ledger.died(death("poison"), held=["poison"])
    clock.advance(apart)
    assert ledger.died(death("poison"), held=["poison"]).quarantined == ({"poison"} if quarantined else set())


def test_a_slots_history_expires_with_the_window(ledger, clock):
    ledger.died(death("a", "poison"), held=["a", "b", "poison"])
    clock.advance(QUARANTINE_WINDOW_SECONDS)
    verdict = ledger.died(death("b", "poison"), held=["a", "b", "poison"])
    assert verdict.culprit is None and verdict.quarantined == set()


# ---------------------------------------------------------------------------- loads cut short


def test_interrupted_loads_are_retried_four_times_in_the_window_then_given_up(ledger, clock):
    """test_reloads_cut_short_by_a_death_with_more_running_wait_for_the_next_worker and its limit."""
    answers = []
    for _ in range(INTERRUPTED_LOADS + 1):
        answers.append(ledger.retry_load("slowload", alone=False))
        clock.advance(10)
    assert answers == [True] * INTERRUPTED_LOADS + [False]
    clock.advance(QUARANTINE_WINDOW_SECONDS)
    assert ledger.retry_load("slowload", alone=False)  # the old ones have left the window


def test_a_load_that_was_all_the_worker_ran_is_not_retried_and_leaves_no_trace(ledger):
    """test_a_worker_crash_during_a_load_fails_that_load_only: a model_fn that kills its worker."""
    assert not ledger.retry_load("crasher", alone=True)
    assert ledger.record("crasher").interrupted == []


def test_models_blamed_within_the_window_reload_last(ledger, clock):
    """test_a_reload_cut_short_by_a_neighbours_crash_waits_for_the_next_worker: the poison comes
    back after its slow neighbour, so that its next crash cuts no reload short."""
    ledger.died(death("old"), held=["old"])
    clock.advance(QUARANTINE_WINDOW_SECONDS)
    ledger.died(death("poison"), held=["old", "poison", "slowload"])
    first, last = ledger.reload_order(["poison", "old", "slowload"], str)
    assert (first, last) == (["old", "slowload"], ["poison"])


# ---------------------------------------------------------------------------- quarantine and after


def test_a_quarantined_model_stays_quarantined_until_forgotten(ledger, clock):
    """A replica that finishes loading after the quarantine (a reload on another worker) must
    not bring the model back READY: the ledger still says quarantined, at any later time."""
    for _ in range(2):
        ledger.died(death("poison"), held=["poison"])
    clock.advance(10 * QUARANTINE_WINDOW_SECONDS)
    assert ledger.quarantined("poison")
    assert ledger.died(Death(SLOT, frozenset({"other"}), frozenset({"other"})), held=["other"]).quarantined == set()
    assert ledger.quarantined("poison")


def test_an_unload_clears_the_record_so_a_new_load_starts_afresh(ledger, clock):
    """Unloaded and loaded again by an explicit LoadModel, a model (quarantined or only blamed)
    gets a fresh start: one more death does not quarantine it, and its loads may be retried."""
    for _ in range(2):
        ledger.died(death("poison"), held=["poison"])
    for _ in range(INTERRUPTED_LOADS):
        ledger.retry_load("poison", alone=False)
    ledger.forget("poison")
    assert not ledger.quarantined("poison") and ledger.record("poison").deaths == []
    assert ledger.retry_load("poison", alone=False)
    clock.advance(1)
    assert ledger.died(Death(("sklearn", 1), frozenset({"poison"}), frozenset({"poison"})), held=["poison"]).quarantined == set()


def test_forgetting_a_blamed_model_that_was_not_quarantined(ledger):
    ledger.died(death("poison"), held=["poison"])
    ledger.forget("poison")
    ledger.forget("never-seen")  # harmless
    assert ledger.record("poison").blame == 0
    assert ledger.reload_order(["poison"], str) == (["poison"], [])


# ---------------------------------------------------------------------------- hung threads


@pytest.mark.parametrize(("lost", "threads", "due"), [
    (0, 1, False), (1, 1, True),  # one thread: its first hung request
    (1, 2, True), (1, 3, False), (2, 3, True),
    (1, 4, False), (2, 4, True), (3, 4, True),  # test_a_worker_that_lost_half_its_threads_is_replaced_...
    (0, 4, False), (7, 16, False), (8, 16, True),
])
def test_a_worker_is_replaced_once_half_its_threads_hang(lost, threads, due):
    assert replace_for_hung_threads(lost, threads) is due
