"""runners: measure a ResNet3d configuration (accuracy, FLOPs, latency) and load video data."""

from __future__ import annotations

__all__: list[str] = []
