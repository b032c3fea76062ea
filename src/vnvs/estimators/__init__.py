"""Estimators of what a video does not say: optical flow (and, later, depth and camera poses)."""
