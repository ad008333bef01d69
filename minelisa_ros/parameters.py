"""The node's parameters: declared in one place, validated into frozen settings.

The model parameters (model_path, vision_tower_path, sam_checkpoint, device, dtype,
answer_mode, max_new_tokens) come from `minelisa_training.model_options.MODEL_OPTIONS`,
so their names, defaults and help are those of the `minelisa` command line. The
others are the node's own (`NODE_PARAMETERS`).

Read-only parameters are read once, on configure, into `NodeSettings`; those that
may change at run time (`LIVE_PARAMETERS`) are re-read into a new `LiveSettings`
whenever one is set, so no callback reads a parameter itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter

from minelisa_training.errors import InvalidInputError
from minelisa_training.following import DEFAULT_CHANGE_THRESHOLD, DEFAULT_REFRESH_S
from minelisa_training.model_options import MAX_NEW_TOKENS_RANGE, MODEL_OPTIONS, ModelOptions

from . import spatial

RELIABILITIES = ("best_effort", "reliable")
STANDING = "standing_instructions"
PROXIMITY = "proximity_alerts"
EMPTY_ARRAY_TYPES = (
    Parameter.Type.BYTE_ARRAY,
    Parameter.Type.BOOL_ARRAY,
    Parameter.Type.INTEGER_ARRAY,
    Parameter.Type.DOUBLE_ARRAY,
)


@dataclass(frozen=True)
class NodeParameter:
    """One of the node's own parameters."""

    name: str
    default: Any
    description: str
    read_only: bool = True
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    choices: tuple[str, ...] | None = None


NODE_PARAMETERS: tuple[NodeParameter, ...] = (
    NodeParameter(
        "qos_reliability",
        "best_effort",
        "Camera subscription reliability: best_effort (matches every publisher) or reliable. "
        "History is KEEP_LAST with depth 1: only the latest frame matters.",
        choices=RELIABILITIES,
    ),
    NodeParameter(
        "use_compressed",
        False,
        "Subscribe to <image>/compressed (JPEG/PNG, image_transport naming) instead of <image>.",
    ),
    NodeParameter(
        "max_frame_age",
        1.0,
        "Refuse to segment a latest frame received more than this many seconds ago (0: no limit).",
        read_only=False,
        float_range=(0.0, 3600.0),
    ),
    NodeParameter(
        "standing_rate",
        1.0,
        "Rate in Hz of the standing instructions (0: off). A tick is skipped while the model "
        "is busy with a service call or when no new frame arrived.",
        read_only=False,
        float_range=(0.0, 30.0),
    ),
    NodeParameter(
        "publish_overlay",
        True,
        "Publish overlays (rgb8, the mask blended on the frame) for rviz, while subscribed.",
        read_only=False,
    ),
    NodeParameter(
        "overlay_alpha", 0.5, "Overlay opacity.", read_only=False, float_range=(0.0, 1.0)
    ),
    NodeParameter(
        "max_queued_requests",
        4,
        "Service calls allowed to wait while one runs; more are refused with a 'busy' message.",
        int_range=(0, 32),
    ),
    NodeParameter(
        "no_frame_warning_period",
        5.0,
        "Warn when no camera frame arrived for this many seconds (QoS mismatch is the usual "
        "cause).",
        float_range=(0.5, 600.0),
    ),
    NodeParameter(
        "diagnostics_period",
        1.0,
        "Seconds between /diagnostics messages.",
        float_range=(0.05, 60.0),
    ),
    NodeParameter(
        "autostart", True, "Configure and activate on start (no lifecycle manager needed)."
    ),
    NodeParameter(
        "use_depth",
        False,
        "Subscribe to `depth` (sensor_msgs/Image 16UC1 mm or 32FC1 m, aligned to the colour "
        "image) and `camera_info`; results then say how far the object is.",
    ),
    NodeParameter(
        "depth_sync_tolerance",
        spatial.SYNC_TOLERANCE_S,
        "Pair the colour frame with the depth frame whose stamp is nearest, if within this "
        "many seconds (else no depth for that frame). A depth frame that is due (none "
        "newer yet) is waited for up to 0.25 s.",
        float_range=spatial.SYNC_TOLERANCE_RANGE,
    ),
    NodeParameter(
        "depth_erode_px",
        spatial.ERODE_PX,
        "Erode the mask by this many pixels before measuring its depth (edge pixels mix "
        "object and background); 0: off.",
        int_range=spatial.ERODE_RANGE,
    ),
    NodeParameter(
        "points_voxel_m",
        spatial.VOXEL_M,
        "Voxel size in metres of the ~/points cloud (one point per voxel); 0: every pixel.",
        float_range=spatial.VOXEL_RANGE,
    ),
    NodeParameter(
        "llm_refresh_period",
        DEFAULT_REFRESH_S,
        "Standing instructions: run the language model again after this many seconds; in "
        "between only the mask decoder runs on new frames with the earlier prompt (0: always).",
        float_range=(0.0, 3600.0),
    ),
    NodeParameter(
        "scene_change_threshold",
        DEFAULT_CHANGE_THRESHOLD,
        "Standing instructions: run the language model again at once when the image features "
        "change this much (mean cosine distance, 0..2) since its last run.",
        float_range=(0.0, 2.0),
    ),
)

PROXIMITY_DESCRIPTION = (
    "Proximity alerts for standing instructions, each 'instruction=metres' (e.g. 'segment the "
    "person=5.0'): ~/alert and /diagnostics WARN when the object's near side is within the "
    "distance, ERROR within half of it. Needs use_depth. An aid, not a certified safety "
    "function. Read on configure (a change applies on the next configure)."
)

STANDING_DESCRIPTION = (
    "Instructions segmented on the latest frame at standing_rate; each is published on "
    "~/standing/<slug>/mask and ~/standing/<slug>/overlay (slug: the text lower-cased, other "
    "characters as '_'), all on ~/result (empty: none). Settable at run time; an empty array "
    "of any type clears it."
)
LIVE_PARAMETERS = ("max_frame_age", "standing_rate", "publish_overlay", "overlay_alpha", STANDING)


def _descriptor(
    description: str, *, read_only: bool, float_range=None, int_range=None, choices=None
) -> ParameterDescriptor:
    d = ParameterDescriptor(description=description, read_only=read_only)
    if float_range is not None:
        low, high = float_range
        d.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high))]
    if int_range is not None:
        d.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    if choices:
        d.additional_constraints = "one of: " + ", ".join(choices)
    return d


def parameter_names() -> list[str]:
    """Every parameter the node declares."""
    names = [s.parameter for s in MODEL_OPTIONS] + [p.name for p in NODE_PARAMETERS]
    return names + [STANDING, PROXIMITY]


def declare(node: Any) -> None:
    """Declare every parameter on `node` (an rclpy Node), with descriptions and ranges."""
    for spec in MODEL_OPTIONS:
        int_range = MAX_NEW_TOKENS_RANGE if type(spec.default) is int else None  # not bool
        help_text = spec.help + " Read on configure."
        if spec.field == "path":
            help_text = "Required. " + help_text
        node.declare_parameter(
            spec.parameter,
            spec.default,
            _descriptor(help_text, read_only=True, int_range=int_range, choices=spec.choices),
        )
    for p in NODE_PARAMETERS:
        node.declare_parameter(
            p.name,
            p.default,
            _descriptor(
                p.description,
                read_only=p.read_only,
                float_range=p.float_range,
                int_range=p.int_range,
                choices=p.choices,
            ),
        )
    for name, description, read_only in (
        (STANDING, STANDING_DESCRIPTION, False),
        (PROXIMITY, PROXIMITY_DESCRIPTION, False),  # read-only would refuse the typed []
    ):
        declared = node.declare_parameter(
            name, Parameter.Type.STRING_ARRAY, _descriptor(description, read_only=read_only)
        )
        if declared.type_ == Parameter.Type.NOT_SET:
            # rclpy infers a byte array from a default of [] and cannot declare a typed empty
            # one; left unset, it answers a get-parameters request naming it (`ros2 param
            # dump`) with no values at all. Set a typed empty string array instead.
            node.set_parameters([Parameter(name, Parameter.Type.STRING_ARRAY, [])])


def coerce_standing(changed: list[Parameter]) -> list[Parameter]:
    """Pre-set callback: an empty array of any type clears the standing instructions.

    `ros2 param set /minelisa standing_instructions "[]"` sends an empty *bool* array;
    the parameter is a string array, which rclpy would refuse as the wrong type.
    """
    return [
        Parameter(STANDING, Parameter.Type.STRING_ARRAY, [])
        if p.name == STANDING and p.type_ in EMPTY_ARRAY_TYPES and len(p.value) == 0
        else p
        for p in changed
    ]


def standing_instructions(value: Any) -> tuple[str, ...]:
    """The standing instructions of a parameter value: stripped, blank ones and repeats
    dropped, in their order."""
    return tuple(dict.fromkeys(text.strip() for text in (value or ()) if text.strip()))


def standing_slugs(instructions: Sequence[str], max_length: int = 40) -> list[str]:
    """Topic-safe names for standing instructions, one each, all different.

    Lower-case; every run of characters other than a-z and 0-9 becomes one '_'; no '_'
    at either end; at most `max_length` characters; an 'i' in front when it would start
    with a digit (ROS names cannot); 'instruction' when nothing is left; a name already
    taken gets '_2', '_3', ...: "Segment the person!" -> segment_the_person.
    """
    taken: set[str] = set()
    out = []
    for text in instructions:
        base = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:max_length].rstrip("_")
        base = base or "instruction"
        if base[0].isdigit():
            base = "i" + base
        slug, n = base, 2
        while slug in taken:
            slug, n = f"{base}_{n}", n + 1
        taken.add(slug)
        out.append(slug)
    return out


@dataclass(frozen=True)
class NodeSettings:
    """The read-only parameters, validated on configure."""

    model: ModelOptions
    qos_reliability: str
    use_compressed: bool
    max_queued_requests: int
    no_frame_warning_period: float
    depth: DepthSettings

    @classmethod
    def read(cls, get: Callable[[str], Any]) -> NodeSettings:
        """From a parameter getter; raises `InvalidInputError` saying what is wrong."""
        model = ModelOptions.from_parameters({s.parameter: get(s.parameter) for s in MODEL_OPTIONS})
        reliability = get("qos_reliability")
        if reliability not in RELIABILITIES:
            raise InvalidInputError(
                f"qos_reliability must be best_effort or reliable, got {reliability!r}"
            )
        return cls(
            model,
            reliability,
            bool(get("use_compressed")),
            int(get("max_queued_requests")),
            float(get("no_frame_warning_period")),
            DepthSettings.read(get),
        )


@dataclass(frozen=True)
class DepthSettings:
    """Depth, following and proximity parameters (read-only, read on configure)."""

    use_depth: bool
    sync_tolerance: float
    erode_px: int
    voxel_m: float | None  # None: every pixel
    refresh_period: float
    change_threshold: float
    proximity_rules: tuple[Any, ...]  # minelisa_training.proximity.ProximityRule

    @classmethod
    def read(cls, get: Callable[[str], Any]) -> DepthSettings:
        from minelisa_training.proximity import parse_rules

        voxel = float(get("points_voxel_m"))
        try:
            rules = tuple(parse_rules(list(get(PROXIMITY) or ())))
        except ValueError as exc:  # InvalidInputError is one
            raise InvalidInputError(f"{PROXIMITY}: {exc}") from None
        return cls(
            bool(get("use_depth")),
            float(get("depth_sync_tolerance")),
            int(get("depth_erode_px")),
            voxel if voxel > 0 else None,
            float(get("llm_refresh_period")),
            float(get("scene_change_threshold")),
            rules,
        )


@dataclass(frozen=True)
class LiveSettings:
    """The parameters that may change while the node runs."""

    max_frame_age: float
    standing_rate: float
    publish_overlay: bool
    overlay_alpha: float
    standing: tuple[str, ...]

    @classmethod
    def read(cls, get: Callable[[str], Any]) -> LiveSettings:
        return cls(
            float(get("max_frame_age")),
            float(get("standing_rate")),
            bool(get("publish_overlay")),
            float(get("overlay_alpha")),
            standing_instructions(get(STANDING)),
        )
