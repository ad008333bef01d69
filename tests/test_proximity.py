"""Proximity alert rule (issue 14): parsing, levels, raise/clear transitions, hysteresis."""

import math

import numpy as np
import pytest

from minelisa_training.errors import InvalidInputError
from minelisa_training.proximity import (
    AlertLevel,
    ProximityMonitor,
    ProximityRule,
    parse_rules,
)

PERSON = "segment the person"


def test_parse_strings_and_pairs():
    rules = parse_rules([" segment the person = 5.0", ("the cable", 2), ("a=b", np.float32(1.5))])
    assert rules == [
        ProximityRule(PERSON, 5.0),
        ProximityRule("the cable", 2.0),
        ProximityRule("a=b", 1.5),
    ]
    assert parse_rules(["what is x=y?=3"]) == [ProximityRule("what is x=y?", 3.0)]  # last '='
    assert isinstance(rules[2].threshold_m, float)


@pytest.mark.parametrize(
    "bad, message",
    [
        (["segment the person"], "must look like"),
        (["segment the person=five"], "not a number"),
        (["segment the person=-1"], "positive number"),
        (["segment the person=nan"], "positive number"),
        (["=2.0"], "needs an instruction"),
        ([f"{PERSON}=5", (PERSON, 3.0)], "given twice"),
        ([42], "not 'instruction=metres'"),
        ("segment the person=5", "a list"),
    ],
)
def test_bad_rules_are_refused(bad, message):
    with pytest.raises(InvalidInputError, match=message):
        parse_rules(bad)


def test_levels_raise_and_clear():
    monitor = ProximityMonitor([f"{PERSON}=5.0"])
    steps = [
        (8.0, AlertLevel.NONE, False, False),
        (5.0, AlertLevel.NONE, False, False),  # at the threshold: not below it
        (4.9, AlertLevel.WARN, True, False),
        (2.4, AlertLevel.ERROR, True, False),
        (2.6, AlertLevel.WARN, False, True),
        (0.5, AlertLevel.ERROR, True, False),
        (9.0, AlertLevel.NONE, False, True),
    ]
    for distance, level, raised, cleared in steps:
        update = monitor.update(PERSON, distance)
        assert (update.level, update.raised, update.cleared) == (level, raised, cleared), distance
        assert update.changed == (raised or cleared) and update.threshold_m == 5.0
    assert str(AlertLevel.WARN) == "warn" and monitor.levels() == {PERSON: AlertLevel.NONE}


def test_hysteresis_holds_a_level_until_clear_of_the_margin():
    monitor = ProximityMonitor([(PERSON, 4.0)], hysteresis_m=0.5)
    levels = [monitor.update(PERSON, d).level for d in (3.9, 4.2, 4.49, 4.5, 1.9, 2.3, 2.6)]
    assert levels == [
        AlertLevel.WARN,
        AlertLevel.WARN,  # 4.2 < 4.0 + 0.5: still warned
        AlertLevel.WARN,
        AlertLevel.NONE,  # 4.5: clear of the margin
        AlertLevel.ERROR,
        AlertLevel.ERROR,  # 2.3 < 2.0 + 0.5
        AlertLevel.WARN,
    ]


def test_missing_readings_hold_then_clear():
    monitor = ProximityMonitor([(PERSON, 4.0)], hold_missing=2)
    assert monitor.update(PERSON, 1.0).level == AlertLevel.ERROR
    held = [monitor.update(PERSON, d) for d in (None, math.nan)]
    assert [u.level for u in held] == [AlertLevel.ERROR] * 2 and math.isnan(held[0].distance_m)
    cleared = monitor.update(PERSON, None)
    assert cleared.level == AlertLevel.NONE and cleared.cleared
    assert ProximityMonitor([(PERSON, 4.0)]).update(PERSON, None).level == AlertLevel.NONE


def test_monitor_refuses_unknown_instructions_and_bad_settings():
    monitor = ProximityMonitor([(PERSON, 4.0), ("the cable", 1.0)])
    with pytest.raises(InvalidInputError, match="no proximity rule for 'the door'"):
        monitor.update("the door", 1.0)
    with pytest.raises(InvalidInputError, match=">= 0 metres"):
        monitor.update(PERSON, -1.0)
    with pytest.raises(InvalidInputError, match="hysteresis_m"):
        ProximityMonitor([(PERSON, 4.0)], hysteresis_m=-0.1)
    with pytest.raises(InvalidInputError, match="hold_missing"):
        ProximityMonitor([(PERSON, 4.0)], hold_missing=1.5)
    monitor.update(PERSON, 1.0)
    assert monitor.level(PERSON) == AlertLevel.ERROR
    monitor.reset()
    assert monitor.level(PERSON) == AlertLevel.NONE
    assert monitor.update(PERSON, math.inf).level == AlertLevel.NONE  # far away
