"""Start the MineLISA segmentation node (and, with rviz:=true, rviz2).

    ros2 launch minelisa minelisa.launch.py params_file:=/robot/minelisa.yaml
    ros2 launch minelisa minelisa.launch.py model_path:=/models/minelisa-bundle \\
        image:=/camera/color/image_raw device:=cuda dtype:=fp16 rviz:=true

The node's parameters come from params_file (default: the package's
config/minelisa.yaml). The launch arguments model_path, vision_tower_path,
sam_checkpoint, device, dtype, quantize, image_views, compile, answer_mode,
max_new_tokens, use_compressed and use_depth override it when given; left empty (their
default) they keep what the params file, or else the node's default, says. image remaps the camera topic, namespace places the node.

rviz:=true starts rviz2 with rviz/minelisa.rviz; where rviz2 is not installed the
launch stops with that error before starting anything. The launch ends when the
node ends, with a non-zero status when the node's was (e.g. the model failed to
load).
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# Launch arguments that override the params file only when given (name -> value type).
OVERRIDES = {
    "model_path": str,
    "vision_tower_path": str,
    "sam_checkpoint": str,
    "device": str,
    "dtype": str,
    "quantize": str,
    "image_views": str,
    "compile": bool,
    "answer_mode": str,
    "max_new_tokens": int,
    "use_compressed": bool,
    "use_depth": bool,
}
HELP = {
    "model_path": "MineLISA bundle or LISA checkpoint directory",
    "vision_tower_path": "local CLIP ViT-L/14 directory (LISA releases)",
    "sam_checkpoint": "SAM .pth (base LLaVA directories)",
    "device": "auto, cpu, cuda or cuda:N",
    "dtype": "auto, fp32, fp16 or bf16",
    "quantize": "none, int8 or int4",
    "image_views": "auto, exact or device (where input images are resized)",
    "compile": "true: torch.compile the SAM encoder and LLM prefix",
    "answer_mode": "fast or chat",
    "max_new_tokens": "chat mode answer cap",
    "use_compressed": "true: subscribe to <image>/compressed",
    "use_depth": "true: subscribe to depth and camera_info (distances, ~/points, ~/markers)",
}
KEEP = " (empty: as the params file or the node's default says)"


def _rviz2_installed() -> bool:
    """Whether `ros2 run rviz2 rviz2` would find an executable (as launch_ros looks it up)."""
    try:
        from ament_index_python.packages import get_package_prefix

        prefix = get_package_prefix("rviz2")
    except (ImportError, LookupError):  # PackageNotFoundError is a KeyError
        return False
    executable = os.path.join(prefix, "lib", "rviz2", "rviz2")
    return os.path.isfile(executable) and os.access(executable, os.X_OK)


def _node_exited(event, context):
    """End the launch with the node; a failed node makes the launch fail."""
    if event.returncode and not context.is_shutdown:
        # launch returns non-zero when an event handler raises; it shuts everything down.
        raise RuntimeError(f"the minelisa node exited with status {event.returncode}")
    return [EmitEvent(event=Shutdown(reason="the minelisa node exited"))]


def _setup(context):
    share = FindPackageShare("minelisa")
    if LaunchConfiguration("rviz").perform(context).strip().lower() in ("true", "1", "yes"):
        if not _rviz2_installed():
            raise RuntimeError(
                "rviz:=true, but rviz2 is not installed (no package rviz2 in the ament index): "
                "install it (e.g. ros-jazzy-rviz2) or launch without rviz:=true; nothing was "
                "started"
            )
        rviz = [
            Node(
                package="rviz2",
                executable="rviz2",
                arguments=["-d", PathJoinSubstitution([share, "rviz", "minelisa.rviz"])],
                output="log",
            )
        ]
    else:
        rviz = []
    overrides = {
        name: ParameterValue(LaunchConfiguration(name), value_type=value_type)
        for name, value_type in OVERRIDES.items()
        if LaunchConfiguration(name).perform(context).strip()
    }
    node = Node(
        package="minelisa",
        executable="minelisa_node",
        name="minelisa",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("depth", LaunchConfiguration("depth")),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
    )
    return [
        node,
        RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_node_exited)),
    ] + rviz


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("minelisa")
    arguments = [
        DeclareLaunchArgument(
            "image", default_value="/camera/image_raw", description="camera topic"
        ),
        DeclareLaunchArgument(
            "depth",
            default_value="/camera/aligned_depth_to_color/image_raw",
            description="depth topic (16UC1 mm or 32FC1 m, aligned to image; use_depth:=true)",
        ),
        DeclareLaunchArgument(
            "camera_info",
            default_value="/camera/aligned_depth_to_color/camera_info",
            description="CameraInfo of the depth topic",
        ),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "minelisa.yaml"]),
            description="node parameters (YAML)",
        ),
        *[
            DeclareLaunchArgument(name, default_value="", description=HELP[name] + KEEP)
            for name in OVERRIDES
        ],
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start rviz2"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_setup)])
