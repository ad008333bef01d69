"""Start the MineLISA segmentation node.

    ros2 launch minelisa minelisa.launch.py model_path:=/models/minelisa-bundle \
        image:=/camera/color/image_raw device:=cuda dtype:=fp16 rviz:=true

Arguments: image (camera topic), model_path, vision_tower_path, device, dtype,
namespace, params_file (defaults to the package's config/minelisa.yaml),
use_compressed, rviz (also start rviz2 with rviz/minelisa.rviz).
"""

from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("minelisa")
    arguments = [
        DeclareLaunchArgument(
            "image", default_value="/camera/image_raw", description="camera image topic"
        ),
        DeclareLaunchArgument(
            "model_path", description="MineLISA bundle or LISA checkpoint directory"
        ),
        DeclareLaunchArgument(
            "vision_tower_path", default_value="", description="local CLIP ViT-L/14 directory"
        ),
        DeclareLaunchArgument(
            "device", default_value="auto", description="auto, cpu, cuda or cuda:N"
        ),
        DeclareLaunchArgument(
            "dtype", default_value="auto", description="auto, fp32, fp16 or bf16"
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "minelisa.yaml"]),
            description="node parameters (YAML)",
        ),
        DeclareLaunchArgument(
            "use_compressed", default_value="false", description="subscribe to <image>/compressed"
        ),
        DeclareLaunchArgument(
            "rviz", default_value="false", description="start rviz2 with the MineLISA view"
        ),
    ]
    node = Node(
        package="minelisa",
        executable="minelisa_node",
        name="minelisa",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model_path": LaunchConfiguration("model_path"),
                "vision_tower_path": LaunchConfiguration("vision_tower_path"),
                "device": LaunchConfiguration("device"),
                "dtype": LaunchConfiguration("dtype"),
                "use_compressed": LaunchConfiguration("use_compressed"),
            },
        ],
        remappings=[("image", LaunchConfiguration("image"))],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "rviz", "minelisa.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, node, rviz])
