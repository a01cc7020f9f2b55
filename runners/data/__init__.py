"""What a run trains on: dataset configs and builders, video files (PyAV decoding, mmaction2's
frame sampling and transforms) and the built-in procedural tasks (motion, motion_events).
"""
