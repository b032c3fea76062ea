"""Names every layer shares and the command line needs before anything heavy loads: the defaults a
command uses when the user names none. Importing this module imports nothing."""

DEFAULT_GENERATOR = "default"
"""The generator of ``vnvs demo`` (and of ``vnvs finetune``): the model shipped with vnvs."""
DEFAULT_RENDER_GENERATOR = "warp+inpaint+refine"
"""The generator of ``vnvs render`` and ``vnvs grid``: the one that scores best on real camera-shot footage.
On held-out real flow pairs (``vnvs eval --benchmark real``, BENCHMARKS.md) the classical warp + OpenCV
inpainting with its holes redrawn by the shipped model beats warp + inpainting alone and every learned model
vnvs has trained used on its own, over the full frame and where flow did not reach."""
SHIPPED_CHECKPOINT = "vnvs-dit-small"
SHIPPED_INPAINT_CHECKPOINT = "vnvs-dit-small-inpaint"
"""The CogNVS-style inpainting model that ships with vnvs (generator ``cognvs``)."""
INPAINT_GENERATOR = "cognvs"
"""Generator name of :data:`SHIPPED_INPAINT_CHECKPOINT`."""
REFINE_GENERATOR = "warp+inpaint+refine"
"""Generator name of warp+inpaint with its holes redrawn by the shipped model (``vnvs.generators.refined``)."""
SHIPPED_GRID_CHECKPOINT = "vnvs-grid-4real"
"""The trained grid model that ships with vnvs (``vnvs grid --method 4real-trained``)."""
TRAINED_GRID_METHOD = "4real-trained"
"""Folder name, under ``vnvs/checkpoints/``, of the model that ships with the package."""
DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
"""Hub id used when no depth model is named (needs a download once, or a local copy)."""
RENDERERS = ("zbuffer", "mesh")
"""How source frames are carried to target cameras: the z-buffer point splat or the depth mesh."""
DEFAULT_RENDERER = "mesh"
"""Renderer of the control signal by default: the one that scored best with the default generator in the loop
(``benchmarks/renderers.py``, see BENCHMARKS.md), although that model was trained on z-buffer pairs."""
FLOW_BACKEND_NAMES = ("dis", "dis-fast", "farneback", "raft", "raft-small")
"""Optical flow backends ``vnvs prepare --flow`` accepts (``vnvs.estimators.flow.FLOW_BACKENDS`` describes each)."""
MAX_SIDE = 8192
"""Largest image side, in pixels, any command accepts."""
