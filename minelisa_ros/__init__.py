"""Thin ROS 2 layer around :class:`minelisa_training.engine.SegmentationEngine`."""
