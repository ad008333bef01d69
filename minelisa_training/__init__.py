"""MineLISA model, MUSeg data pipeline, training and evaluation (no ROS imports)."""

__version__ = "0.1.0"
