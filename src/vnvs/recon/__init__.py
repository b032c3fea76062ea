"""4D Gaussian scenes: a differentiable Gaussian rasterizer, deformable Gaussians and their
reconstruction from time x view grids (see docs/recon.md)."""
