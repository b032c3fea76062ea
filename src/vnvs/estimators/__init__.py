"""Estimators of what a video does not say: optical flow (`flow`) and depth (`depth`)."""
