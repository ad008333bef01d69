"""The MineLISA node against real ROS 2 (Jazzy PyPI wheels, Fast DDS on loopback).

One module-scoped run: build the interfaces with the wheels' toolchain, start
two nodes (raw and compressed camera input) on a tiny random-weight bundle,
drive them with client scenarios in subprocesses (tests/ros_probe.py), then
check what came back. Masks are compared with a direct engine call on the same
pixels.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from ros_helpers import (  # noqa: E402
    REPO,
    NodeProcess,
    domain_id,
    frame_pixels,
    interfaces_prefix,
    ros_env,
    run_probe,
)

from minelisa_ros.diagnostics import RateMeter  # noqa: E402
from minelisa_ros.parameters import parameter_names  # noqa: E402

pytestmark = pytest.mark.ros

INSTRUCTION = "segment the exposed cable"
MAX_FRAME_AGE = 1.0
CONCURRENT = 4
MAX_QUEUED = 1
STAMP_BASE = 1000
STANDING = ["segment the conveyor", "  Segment the PERSON! "]
STANDING_TEXT = [text.strip() for text in STANDING]
SLUGS = ["segment_the_conveyor", "segment_the_person"]


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle


@pytest.fixture(scope="module")
def engine(bundle):
    from minelisa_training.engine import SegmentationEngine

    return SegmentationEngine.from_pretrained(bundle)


@pytest.fixture(scope="module")
def run(tmp_path_factory, bundle):
    work = tmp_path_factory.mktemp("ros")
    env = ros_env(interfaces_prefix(tmp_path_factory), domain_id=domain_id(0))
    common = [
        "-p",
        f"model_path:={bundle}",
        "-p",
        "diagnostics_period:=0.1",
        "-p",
        "no_frame_warning_period:=2.0",
        "-p",
        f"max_frame_age:={MAX_FRAME_AGE}",
    ]
    main = NodeProcess(
        env,
        work / "main.log",
        [
            "--params-file",
            str(REPO / "config" / "minelisa.yaml"),
            *common,
            "-p",
            f"max_queued_requests:={MAX_QUEUED}",
            "-r",
            "image:=/test_cam/image_raw",
        ],
    )
    compressed = NodeProcess(
        env,
        work / "compressed.log",
        [
            *common,
            "-r",
            "__node:=minelisa_c",
            "-r",
            "image:=/test_cam2/image",
            "-p",
            "use_compressed:=true",
            "-p",
            "qos_reliability:=reliable",
        ],
    )
    try:
        main.wait_for("active:", timeout=180)
        compressed.wait_for("active:", timeout=180)
        no_frame = run_probe(env, "no_frame", work / "no_frame", camera="/test_cam/image_raw")
        report = run_probe(
            env,
            "main",
            work / "main",
            timeout=240,
            camera="/test_cam/image_raw",
            instruction=INSTRUCTION,
            concurrent=CONCURRENT,
            standing_seconds=4.0,
            standing=STANDING,
            standing_slugs=SLUGS,
            max_frame_age=MAX_FRAME_AGE,
        )
        comp = run_probe(
            env,
            "compressed",
            work / "compressed",
            node="/minelisa_c",
            camera="/test_cam2/image",
            instruction=INSTRUCTION,
            warning_period=2.0,
        )
        names = [*parameter_names(), "use_sim_time"]
        # On the node no scenario set parameters on: standing_instructions as it started.
        params = run_probe(
            env, "parameters", work / "parameters", node="/minelisa_c", camera="/x", names=names
        )
    finally:
        codes = (main.stop(), compressed.stop())
    arrays = dict(np.load(work / "main" / "arrays.npz"))
    yield SimpleNamespace(
        no_frame=no_frame,
        main=report,
        parameters=params,
        compressed=comp,
        arrays=arrays,
        comp_arrays=dict(np.load(work / "compressed" / "arrays.npz")),
        main_log=main.text(),
        compressed_log=compressed.text(),
        codes=codes,
    )


def assert_same_mask(mono8: np.ndarray, expected: np.ndarray) -> None:
    """Node mask == direct engine mask (a few boundary pixels may flip with thread scheduling)."""
    assert mono8.dtype == np.uint8 and set(np.unique(mono8)) <= {0, 255}
    assert mono8.shape == expected.shape
    assert np.mean((mono8 == 255) != expected) <= 0.002


def test_no_frame_yet_is_refused_and_warned(run):
    call = run.no_frame["calls"]["no_frame"]
    assert not call["success"]
    assert "no frame received yet on /test_cam/image_raw" in call["message"]
    assert (
        "no frame received on /test_cam/image_raw for 2 s: no publisher on that topic"
        in run.main_log
    )


def test_latest_frame_mask_matches_engine(run, engine):
    call = run.main["calls"]["latest"]
    assert call["success"], call["message"]
    mask = call["mask"]
    assert mask["encoding"] == "mono8" and mask["size"] == [48, 64] and mask["step"] == 64
    assert mask["frame_id"] == "camera_optical"
    index = mask["stamp"][0] - STAMP_BASE
    published_before_reply = [i for t, i in run.main["published"] if t <= call["finished"]]
    assert 0 <= index <= max(published_before_reply)
    expected = engine.segment(frame_pixels(index), INSTRUCTION)
    assert_same_mask(run.arrays["latest"], expected.mask)
    assert call["answer"] == expected.answer
    assert call["coverage"] == pytest.approx(expected.coverage, abs=0.01)
    assert 0 < call["inference_ms"] <= call["total_ms"]


def test_inline_images_use_their_own_pixels_and_header(run, engine):
    bgr = np.ascontiguousarray(frame_pixels(7)[:40, :56, ::-1])
    expected = engine.segment(np.ascontiguousarray(bgr[..., ::-1]), INSTRUCTION).mask
    for name, frame_id in (("inline_bgr8", "inline_cam"), ("inline_png", "inline_png")):
        call = run.main["calls"][name]
        assert call["success"], call["message"]
        assert call["mask"]["size"] == [40, 56] and call["mask"]["frame_id"] == frame_id
        assert_same_mask(run.arrays[name], expected)
    assert run.main["calls"]["inline_bgr8"]["mask"]["stamp"] == [42, 0]


@pytest.mark.parametrize(
    "name,expected",
    [
        ("empty_instruction", "invalid request: instruction is empty"),
        ("long_instruction", "instruction is too long"),
        ("unsupported_encoding", "unsupported image encoding 'yuv422'"),
        ("bad_length", "image data length 100 does not match step x height = 192 x 48 = 9216"),
        ("zero_size", "image has zero size (0x48 pixels)"),
        ("absurd_size", "exceeds the limit of 16384 pixels per side"),
        ("undecodable_compressed", "could not decode the compressed image"),
    ],
)
def test_bad_request_gets_specific_message(run, name, expected):
    call = run.main["calls"][f"bad_{name}"]
    assert not call["success"]
    assert expected in call["message"]
    assert call["mask"]["size"] == [0, 0]


def test_engine_refusal_is_reported_and_node_keeps_serving(run):
    call = run.main["calls"]["bad_model_error"]
    assert not call["success"]
    # The engine refuses a 1 x 3000 strip (nothing is left once scaled); the caller is told why.
    assert call["message"].startswith("invalid request: ") and "aspect ratio" in call["message"], (
        call["message"]
    )
    assert run.main["calls"]["good_after_bad"]["success"]


def _published_between(run, start: float, end: float) -> int:
    return sum(start < t <= end for t, _ in run.main["published"])


def test_frames_keep_arriving_during_a_call(run):
    call = run.main["calls"]["latest"]
    during = [
        d for d in run.main["topics"]["diagnostics"] if call["started"] < d["t"] < call["finished"]
    ]
    assert len(during) >= 2, "diagnostics stopped during the call"
    first, last = during[0], during[-1]
    frames = int(last["values"]["frames_received"]) - int(first["values"]["frames_received"])
    seconds = last["t"] - first["t"]
    # A call of the tiny model takes a few hundred ms here; diagnostics come every 0.1 s.
    assert seconds >= 0.15, f"call lasted {call['finished'] - call['started']:.2f} s"
    # Compared with what the probe managed to publish (30 Hz asked; a loaded machine
    # publishes fewer). A camera callback blocked by the model would receive none; a free
    # one receives fewer than published while the model's threads and the GIL share the
    # two cores with it (39% of the published rate in one CI run), so the bounds are loose.
    published = _published_between(run, first["t"], last["t"])
    assert published >= 4 and frames >= max(2, 0.25 * published), (frames, published, seconds)
    window = RateMeter().window_s
    published_rate = _published_between(run, last["t"] - window, last["t"]) / window
    assert 0.2 * published_rate < float(last["values"]["frame_rate_hz"]) < 1.5 * published_rate
    assert last["values"]["model_state"] == "loaded" and last["level"] == 0


def test_concurrent_calls_are_answered_or_refused_within_the_bound(run):
    calls = [run.main["calls"][f"concurrent_{n}"] for n in range(CONCURRENT)]
    ok = [c for c in calls if c["success"]]
    busy = [c for c in calls if not c["success"]]
    assert len(ok) == 1 + MAX_QUEUED
    assert len(busy) == CONCURRENT - 1 - MAX_QUEUED
    for c in busy:
        assert c["message"].startswith("busy: ") and "max_queued_requests=1" in c["message"]
        # refused at once, not after waiting for the running call
        assert c["finished"] - c["started"] < min(o["finished"] - o["started"] for o in ok)
    assert run.main["calls"]["while_inactive"]["message"].startswith("node is not active")


def test_bad_instruction_is_refused_before_waiting_for_the_model(run):
    """Checked before admission and the model lock (#11.4): not "busy", not after the calls."""
    calls = run.main["calls"]
    bad, good = calls["check_first_bad"], [calls["check_first_0"], calls["check_first_1"]]
    assert all(g["success"] for g in good), [g["message"] for g in good]
    assert bad["message"] == "invalid request: instruction is empty"
    assert bad["finished"] < min(g["finished"] for g in good)


def test_refused_requests_are_not_logged_as_errors(run):
    """A caller's mistake (empty or over-long instruction, an image the engine refuses) is
    answered and warned about, never logged as an ERROR with a traceback (#11.4)."""
    assert "refused '   ': invalid request: instruction is empty" in run.main_log
    assert "Traceback" not in run.main_log
    assert "[ERROR]" not in run.main_log


def test_topics_carry_results_with_source_headers(run):
    topics = run.main["topics"]
    published = {i for _, i in run.main["published"]}
    masks = topics["mask"]
    assert masks and all(m["encoding"] == "mono8" and set(m["values"]) <= {0, 255} for m in masks)
    camera = [m for m in masks if m["frame_id"] == "camera_optical"]
    assert camera and all(
        m["size"] == [48, 64] and m["stamp"][0] - STAMP_BASE in published for m in camera
    )
    assert any(m["frame_id"] == "inline_cam" for m in masks)

    overlays = topics["overlay"]
    assert overlays and all(
        o["encoding"] == "rgb8" and o["step"] == 3 * o["size"][1] for o in overlays
    )
    first = overlays[0]
    if first["frame_id"] == "camera_optical":  # the overlay blends the mask onto that exact frame
        original = frame_pixels(first["stamp"][0] - STAMP_BASE)
        changed = np.any(run.arrays[first["key"]] != original, axis=-1)
        assert changed.any()

    standing = [r for r in topics["result"] if r["source"] == "standing"]
    assert standing, "no standing-instruction results"
    assert all(
        r["instruction"] in STANDING_TEXT and r["header_stamp"] == r["stamp"] for r in standing
    )
    for text in STANDING_TEXT:  # one result per new frame and instruction
        stamps = [tuple(r["stamp"]) for r in standing if r["instruction"] == text]
        assert stamps and len(set(stamps)) == len(stamps), text
    service = [r for r in topics["result"] if r["source"] == "service"]
    assert any(r["instruction"] == INSTRUCTION for r in service)


def test_each_standing_instruction_has_its_own_mask_and_overlay_topics(run):
    """~/standing/<slug>/mask and .../overlay per instruction; ~/mask and ~/overlay carry only
    service results, so standing masks no longer interleave there (#11.6)."""
    topics = run.main["topics"]
    for text, slug in zip(STANDING_TEXT, SLUGS):
        masks = topics[f"standing/{slug}/mask"]
        assert masks, f"nothing on ~/standing/{slug}/mask"
        assert all(m["encoding"] == "mono8" and m["frame_id"] == "camera_optical" for m in masks)
        stamps = [tuple(m["stamp"]) for m in masks]
        assert len(set(stamps)) == len(stamps)  # one per frame: no other instruction's masks
        results = {
            tuple(r["stamp"]): r["key"]
            for r in topics["result"]
            if r["source"] == "standing" and r["instruction"] == text
        }
        both = [m for m in masks if tuple(m["stamp"]) in results]
        assert both, slug
        for m in both:  # the topic's mask is this instruction's result, pixel for pixel
            np.testing.assert_array_equal(
                run.arrays[m["key"]], run.arrays[results[tuple(m["stamp"])]]
            )
        overlays = topics[f"standing/{slug}/overlay"]
        assert overlays and all(o["encoding"] == "rgb8" for o in overlays)
    start, end = run.main["standing_window"]
    during = [m for m in topics["mask"] + topics["overlay"] if start + 0.3 < m["t"] < end]
    assert not during, f"{len(during)} standing results on ~/mask or ~/overlay"


def test_mask_compressed_is_the_mask_as_png(run):
    """~/mask/compressed: the same mono8 mask, PNG, same header (#11.7)."""
    topics = run.main["topics"]
    compressed = topics["mask_compressed"]
    assert compressed, "nothing on ~/mask/compressed"
    assert all(c["format"].startswith("mono8; png") for c in compressed)
    masks = {(tuple(m["stamp"]), m["frame_id"]): m["key"] for m in topics["mask"]}
    matched = 0
    for c in compressed:
        key = masks.get((tuple(c["stamp"]), c["frame_id"]))
        if key is not None:
            np.testing.assert_array_equal(run.arrays[c["key"]], run.arrays[key])
            matched += 1
    assert matched >= len(compressed) // 2, (matched, len(compressed))


def test_lifecycle_deactivate_and_activate(run):
    assert run.main["deactivated"] and run.main["reactivated"]
    assert run.main["calls"]["after_reactivate"]["success"]


def test_frame_older_than_the_limit_is_refused(run):
    call = run.main["calls"]["too_old"]
    assert not call["success"]
    assert f"older than max_frame_age={MAX_FRAME_AGE:g} s" in call["message"]


def test_compressed_camera_input_and_qos_mismatch_warning(run, engine):
    calls = run.compressed["calls"]
    assert (
        not calls["mismatch"]["success"] and "no frame received yet" in calls["mismatch"]["message"]
    )
    assert (
        "this node asks for reliable, which a best_effort publisher cannot serve"
        in run.compressed_log
    )
    latest = calls["latest"]
    assert latest["success"], latest["message"]
    index = latest["mask"]["stamp"][0] - STAMP_BASE
    assert_same_mask(
        run.comp_arrays["latest"], engine.segment(frame_pixels(index), INSTRUCTION).mask
    )
    bad = calls["undecodable_latest"]
    assert (
        not bad["success"]
        and "latest frame on /test_cam2/image/compressed: could not decode" in bad["message"]
    )


def test_nodes_exit_cleanly(run):
    assert run.codes == (0, 0), (run.main_log[-2000:], run.compressed_log[-2000:])


def test_config_and_launch_files_name_real_parameters(run):
    """config/minelisa.yaml was loaded by the main node; every key must be a declared parameter."""
    from minelisa_ros.parameters import parameter_names

    params = yaml.safe_load((REPO / "config" / "minelisa.yaml").read_text())["/**"][
        "ros__parameters"
    ]
    declared = parameter_names()
    for name in params:
        assert name in declared, name
    # The launch file passes these on when given (tests/test_ros_tools.py runs it).
    tree = ast.parse((REPO / "launch" / "minelisa.launch.py").read_text())
    overrides = next(
        [key.value for key in node.value.keys]
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "OVERRIDES"
    )
    for name in ("model_path", "vision_tower_path", "device", "dtype", "use_compressed"):
        assert name in overrides
    for name in overrides:
        assert name in declared, name


def test_describe_model_error_names_gpu_out_of_memory():
    import torch

    from minelisa_ros.model_errors import describe_model_error
    from minelisa_training.errors import InvalidInputError

    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert describe_model_error(oom).startswith(
        "model error: GPU out of memory (CUDA out of memory."
    )
    assert "fp16" in describe_model_error(oom)
    assert (
        describe_model_error(InvalidInputError("image is empty"))
        == "invalid request: image is empty"
    )
    assert (
        describe_model_error(RuntimeError("shape mismatch"))
        == "model error: RuntimeError: shape mismatch"
    )


def test_every_parameter_has_a_value(run):
    """`ros2 param dump` asks for all: one unset parameter and rclpy answers none (#11.1)."""
    entries = run.parameters["all"]
    assert [e["name"] for e in entries] == [*parameter_names(), "use_sim_time"]
    unset = [e["name"] for e in entries if e["type"] == "NOT_SET"]
    assert not unset, unset
    standing = entries[parameter_names().index("standing_instructions")]
    assert standing["type"] == "STRING_ARRAY" and standing["value"] == []


def test_standing_instructions_clear_with_an_empty_array_of_any_type(run):
    """ros2cli types "[]" as a bool array; it clears the instructions (#11.10)."""
    p = run.parameters
    assert p["set_nonempty"]["successful"], p["set_nonempty"]["reason"]
    assert p["after_set"][0]["value"] == ["segment the person"]
    assert p["clear"]["successful"], p["clear"]["reason"]
    assert p["after_clear"][0]["type"] == "STRING_ARRAY" and p["after_clear"][0]["value"] == []
    assert not p["wrong_type"]["successful"]  # a non-empty array of numbers is still refused
