"""``vnvs view``: a scene folder, a 3DGS PLY, a grid folder or a ``vnvs render`` output in the browser (viser,
the ``viewer`` extra).

The panel has a time slider and a play button (the source's frame rate, looping), the source and target
camera paths (frustums at a stride and a polyline each: source orange, targets blue), and a trajectory
editor: "Add keyframe" records the browser's camera, "Save" writes a vnvs trajectory JSON through the
keyframes that ``vnvs render --trajectory`` and ``vnvs render-scene --trajectory`` read. Everything
that is not viser glue (loading, the data at a time step, camera conversions, keyframes -> trajectory)
lives in :mod:`vnvs.apps.view_data`. See docs/viewer.md.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np

from vnvs.apps.recon_config import ViewConfig
from vnvs.apps.view_data import (
    KEYFRAME_COLOR,
    CameraPath,
    Keyframe,
    Points,
    Viewable,
    keyframe_from_viser,
    keyframes_to_trajectory,
    load_viewable,
    opencv_to_viser,
    save_keyframes,
)
from vnvs.errors import InputError, VnvsError
from vnvs.geometry.se3 import invert_se3
from vnvs.utils.outputs import check_destination

VISER_HINT = "vnvs view needs viser: pip install 'vnvs[viewer]'"


def _import_viser():
    try:
        import viser
    except ImportError:
        raise InputError(VISER_HINT) from None
    return viser


def open_view(config: ViewConfig):
    """Check the input and the trajectory destination, load them, then start the viser server (not blocking).

    Returns ``(server, viewable, state)``; ``server.get_port()`` is the port it listens on (the next free one
    when ``config.port`` is taken).
    """
    check_destination(config.trajectory_out, "file")
    viewable = load_viewable(config.path, view=config.view, max_points=config.max_points)
    viser = _import_viser()
    server = viser.ViserServer(host=config.host, port=config.port, label="vnvs view", verbose=False)
    state = _ViewerState(server, viewable, config)
    state.build()
    return server, viewable, state


def run_view(config: ViewConfig) -> None:  # pragma: no cover - serves until interrupted (tested as a subprocess)
    server, viewable, _ = open_view(config)
    port = server.get_port()
    for note in viewable.notes:
        print(f"note: {note}", flush=True)
    if port != config.port:
        print(f"note: port {config.port} is taken; serving on {port}", flush=True)
    shown = "localhost" if config.host in ("0.0.0.0", "::") else config.host
    print(f"vnvs view: http://{shown}:{port} ({viewable.kind} {config.path}; Ctrl+C to stop)", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


class _ViewerState:
    """The viser scene and panel of one viewer, and what the controls change."""

    def __init__(self, server, viewable: Viewable, config: ViewConfig) -> None:
        self.server, self.v, self.config = server, viewable, config
        self.lock = threading.RLock()
        self.playing = False
        self.step = 0
        self.keyframes: list[Keyframe] = []
        self.data_handle = None
        self.path_handles: list = []
        self.keyframe_handles: list = []
        self.preview_handles: list = []
        self.scale = self._frustum_scale()

    # ---- scene -------------------------------------------------------------------------------

    def _frustum_scale(self) -> float:
        if self.v.look_at_depth:
            return 0.08 * self.v.look_at_depth
        centres = np.concatenate([p.centers for p in self.v.paths]) if self.v.paths else np.zeros((1, 3))
        spread = float(np.linalg.norm(centres.max(0) - centres.min(0)))
        return 0.08 * spread if spread > 0 else 0.1

    def _set_initial_camera(self) -> None:
        source = next((p for p in self.v.paths if p.role == "source"), self.v.paths[0] if self.v.paths else None)
        scene = self.server.scene
        if source is None:
            return
        i = min(self.step, source.w2c.shape[0] - 1)
        position, _, fov = opencv_to_viser(source.w2c[i], source.K[i], source.height)
        c2w = invert_se3(source.w2c[i].double()).numpy()
        up = -c2w[:3, 1]
        scene.set_up_direction(tuple(float(x) for x in up))
        depth = self.v.look_at_depth or 1.0
        cam = self.server.initial_camera  # behind and above the source camera, looking at what it looks at
        cam.position = tuple(float(x) for x in position - c2w[:3, 2] * 0.6 * depth + up * 0.25 * depth)
        cam.look_at = tuple(float(x) for x in position + c2w[:3, 2] * depth)
        cam.up = tuple(float(x) for x in up)
        cam.fov = fov

    def _draw_path(self, path: CameraPath, root: str, color, frustums: bool = True) -> list:
        """A polyline through the camera centres and frustums at a stride; returns the scene handles."""
        scene, handles = self.server.scene, []
        centres = path.centers
        if len(centres) > 1:
            segments = np.stack([centres[:-1], centres[1:]], axis=1).astype(np.float32)
            handles.append(scene.add_line_segments(f"{root}/{path.name}/line", segments, color, thickness=3.0,
                                                   thickness_units="screen"))
        for i in path.frustum_indices() if frustums else []:
            position, wxyz, fov = opencv_to_viser(path.w2c[i], path.K[i], path.height)
            handles.append(scene.add_camera_frustum(
                f"{root}/{path.name}/frame_{i:05d}", fov=fov, aspect=path.width / path.height, scale=self.scale,
                color=color, wxyz=wxyz, position=position, thickness=2.0, thickness_units="screen"))
        return handles

    def show(self, step: int) -> None:
        """Show time step ``step``: the splats or points, and the label."""
        with self.lock:
            self.step = int(step)
            data = self.v.frame(self.step)
            scene = self.server.scene
            if data is None:
                if self.data_handle is not None:
                    self.data_handle.remove()
                self.data_handle = None
            elif isinstance(data, Points):
                self.data_handle = scene.add_point_cloud("/data", data.points, data.colors, point_size=data.point_size,
                                      point_shape="square", point_shading="flat")
            else:
                self.data_handle = scene.add_gaussian_splats("/data", centers=data.centers, covariances=data.covariances,
                                          rgbs=data.rgbs, opacities=data.opacities)
            if hasattr(self, "time_label"):
                self.time_label.content = (f"time {self.v.times[self.step]:.3f} (step {self.step} of "
                                           f"{self.v.num_times - 1})")

    # ---- panel -------------------------------------------------------------------------------

    def build(self) -> None:
        gui = self.server.gui
        v = self.v
        self.step = v.num_times // 2 if v.kind == "scene" else 0
        self._set_initial_camera()
        gui.add_markdown(f"**{v.kind}** `{v.path.name or v.path}`" + "".join(f"\n\n_{n}_" for n in v.notes))
        with gui.add_folder("Time"):
            self.time_label = gui.add_markdown("")
            if v.num_times > 1:
                self.slider = gui.add_slider("time step", min=0, max=v.num_times - 1, step=1, initial_value=self.step)
                self.slider.on_update(lambda _e: self.show(self.slider.value))
                self.play = gui.add_button("Play", icon=None)
                self.play.on_click(lambda _e: self.toggle_play())
                gui.add_markdown(f"{v.num_times} steps at {v.fps:g} fps")
            if v.set_views is not None and v.views > 1:
                options = ["all"] + [str(i) for i in range(v.views)]
                initial = "all" if self.config.view is None else str(self.config.view)
                views = gui.add_dropdown("grid views", options, initial_value=initial)

                @views.on_update
                def _(_e) -> None:
                    v.set_views(None if views.value == "all" else [int(views.value)])
                    self.show(self.step)
        with gui.add_folder("Camera paths"):
            if v.paths:
                gui.add_markdown("source: orange; target: blue; keyframes: magenta")
                show_paths = gui.add_checkbox("show camera paths", initial_value=True)

                @show_paths.on_update
                def _(_e) -> None:
                    for handle in self.path_handles:
                        handle.visible = show_paths.value
            else:
                gui.add_markdown("_no cameras_")
        with gui.add_folder("Trajectory editor"):
            add = gui.add_button("Add keyframe from current view")
            self.kf_label = gui.add_markdown("0 keyframes")
            self.frames = gui.add_number("frames", initial_value=v.num_times if v.num_times > 1 else 48, min=1,
                                         max=100_000, step=1)
            self.use_times = gui.add_checkbox("keyframe times", initial_value=False,
                                              hint="each frame shows the time interpolated between the keyframes' "
                                                   "time steps (bullet time); off: frame i shows time i")
            clear = gui.add_button("Clear keyframes")
            save = gui.add_button("Save trajectory")
            self.save_label = gui.add_markdown(f"saves to `{self.config.trajectory_out}`")
            add.on_click(lambda e: self.add_keyframe(e.client))
            clear.on_click(lambda _e: self.clear_keyframes())
            save.on_click(lambda e: self.save(e.client))
        for p in v.paths:
            self.path_handles += self._draw_path(p, "/cameras", p.color)
        self.show(self.step)
        if v.num_times > 1:
            threading.Thread(target=self._player, daemon=True, name="vnvs-view-play").start()

    def toggle_play(self) -> None:
        self.playing = not self.playing
        self.play.label = "Pause" if self.playing else "Play"

    def _player(self) -> None:
        period = 1.0 / max(self.v.fps, 1e-3)
        next_t = time.monotonic()
        while True:
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
            if not self.playing:
                next_t = time.monotonic()
                continue
            try:
                self.slider.value = (int(self.slider.value) + 1) % self.v.num_times  # calls show()
            except Exception as e:  # noqa: BLE001 - a failing frame stops playback, the server keeps serving
                print(f"warning: playback stopped: {e}", file=sys.stderr, flush=True)
                self.playing = False

    # ---- trajectory editor ------------------------------------------------------------------------

    def _size(self, client) -> tuple[int, int]:
        if self.v.size is not None:
            return self.v.size
        h, w = int(client.camera.image_height), int(client.camera.image_width)
        return (h, w) if h > 0 and w > 0 else (480, 640)

    def add_keyframe(self, client) -> None:
        if client is None:
            return
        cam = client.camera
        with self.lock:
            k = keyframe_from_viser(cam.position, cam.wxyz, cam.fov, self.step)
            self.keyframes.append(k)
            n = len(self.keyframes)
            H, W = self._size(client)
            self.keyframe_handles.append(self.server.scene.add_camera_frustum(
                f"/keyframes/k_{n:03d}", fov=k.fov, aspect=W / H, scale=self.scale * 1.3, color=KEYFRAME_COLOR,
                wxyz=np.asarray(cam.wxyz, dtype=np.float64), position=np.asarray(cam.position, dtype=np.float64),
                thickness=3.0, thickness_units="screen"))
            if n > 1:  # the interpolated path through the keyframes
                for h in self.preview_handles:
                    h.remove()
                traj = keyframes_to_trajectory(self.keyframes, 16 * (n - 1), (H, W))
                self.preview_handles = self._draw_path(CameraPath("path", "target", traj.w2c, traj.K, H, W),
                                                       "/keyframes", KEYFRAME_COLOR, frustums=False)
            self.kf_label.content = f"{n} keyframe{'s' if n != 1 else ''} (last at time step {k.time})"

    def clear_keyframes(self) -> None:
        with self.lock:
            self.keyframes.clear()
            for h in self.keyframe_handles + self.preview_handles:
                h.remove()
            self.keyframe_handles, self.preview_handles = [], []
            self.kf_label.content = "0 keyframes"

    def save(self, client) -> None:
        with self.lock:
            try:
                traj = save_keyframes(self.config.trajectory_out, self.keyframes, int(self.frames.value),
                                      self._size(client), keyframe_times=bool(self.use_times.value),
                                      meta={"tool": "vnvs view", "opened": str(self.v.path),
                                            "keyframes": len(self.keyframes)})
            except (VnvsError, OSError) as e:
                self.save_label.content = f"**not saved**: {e}"
                return
            self.save_label.content = (f"saved {len(traj)} frames ({traj.width}x{traj.height}) to "
                                       f"`{self.config.trajectory_out}`")
            print(f"wrote {self.config.trajectory_out} ({len(traj)} frames from {len(self.keyframes)} keyframes)",
                  flush=True)
