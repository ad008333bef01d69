"""The node's parameter helpers that need no running node."""

from __future__ import annotations

import pytest

from minelisa_ros import parameters
from minelisa_ros.parameters import (
    LiveSettings,
    NodeSettings,
    parameter_names,
    standing_instructions,
    standing_slugs,
)
from minelisa_training.errors import InvalidInputError
from minelisa_training.model_options import MODEL_OPTIONS


def test_standing_slugs_are_topic_safe_and_distinct():
    texts = [
        "Segment the PERSON!",
        "segment the person",
        "3 cables on the left",
        "¿¡ !?",
        "x" * 80,
        "segment   the -- conveyor belt",
    ]
    assert standing_slugs(texts) == [
        "segment_the_person",
        "segment_the_person_2",
        "i3_cables_on_the_left",
        "instruction",
        "x" * 40,
        "segment_the_conveyor_belt",
    ]


def test_standing_instructions_are_stripped_and_deduplicated():
    assert standing_instructions(None) == ()
    assert standing_instructions(["", "  a ", "b", "a", "   "]) == ("a", "b")


def test_model_parameters_come_from_the_shared_options():
    names = parameter_names()
    for spec in MODEL_OPTIONS:
        assert spec.parameter in names
    assert len(names) == len(set(names))


def values(**overrides):
    base = {spec.parameter: spec.default for spec in MODEL_OPTIONS}
    base.update({p.name: p.default for p in parameters.NODE_PARAMETERS})
    base.update(
        model_path="/models/bundle",
        qos_reliability="best_effort",
        use_compressed=False,
        max_queued_requests=4,
        no_frame_warning_period=5.0,
        max_frame_age=1.0,
        standing_rate=1.0,
        publish_overlay=True,
        overlay_alpha=0.5,
        standing_instructions=["a", " b "],
        proximity_alerts=[],
    )
    base.update(overrides)
    return base.__getitem__


def test_settings_validate_on_read():
    settings = NodeSettings.read(values())
    assert settings.model.path == "/models/bundle" and settings.model.device == "auto"
    assert LiveSettings.read(values()).standing == ("a", "b")
    with pytest.raises(InvalidInputError, match="no model given"):
        NodeSettings.read(values(model_path=""))
    with pytest.raises(InvalidInputError, match="qos_reliability"):
        NodeSettings.read(values(qos_reliability="sometimes"))
    with pytest.raises(InvalidInputError, match="dtype"):
        NodeSettings.read(values(dtype="int4"))


def test_depth_settings_read_and_proximity_rules_validated():
    depth = NodeSettings.read(values()).depth
    assert not depth.use_depth and depth.voxel_m == 0.02 and depth.proximity_rules == ()
    depth = NodeSettings.read(
        values(points_voxel_m=0.0, proximity_alerts=["segment the person=5.0"])
    ).depth
    assert depth.voxel_m is None
    assert [(r.instruction, r.threshold_m) for r in depth.proximity_rules] == [
        ("segment the person", 5.0)
    ]
    with pytest.raises(InvalidInputError, match="proximity_alerts"):
        NodeSettings.read(values(proximity_alerts=["segment the person"]))


def test_config_and_launch_file_say_what_the_node_declares():
    """config/minelisa.yaml holds every model option at its shared default; the launch file
    can override each one (and passes none unless given)."""
    import ast
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((repo / "config" / "minelisa.yaml").read_text())["/**"]
    params = params["ros__parameters"]
    for spec in MODEL_OPTIONS:
        assert params[spec.parameter] == spec.default, spec.parameter
    assert set(params) <= set(parameter_names())
    tree = ast.parse((repo / "launch" / "minelisa.launch.py").read_text())
    overrides = next(
        [key.value for key in node.value.keys]
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "OVERRIDES"
    )
    assert {spec.parameter for spec in MODEL_OPTIONS} <= set(overrides)
    assert set(overrides) <= set(parameter_names())
