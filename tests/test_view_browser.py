"""``vnvs view`` for real: the command serves a tiny scene folder and a grid folder on a free port, headless
Chromium loads the page (WebGL in software, SwiftShader) and takes a screenshot, which must show the scene
and not an empty canvas; and the trajectory editor records a real browser's camera and saves it.

Skipped where viser or a Chromium/Chrome binary is missing. Every server and browser runs in its own
process group and is killed at the end, whatever happens; each test is bounded well under a minute.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vnvs.apps.recon_config import ViewConfig
from vnvs.apps.view_data import keyframe_from_viser
from vnvs.cameras import Cameras, resolve_trajectory
from vnvs.cameras.trajectory import Trajectory
from vnvs.cli import main
from vnvs.io.grid import read_grid, write_grid
from vnvs.synthetic.grids import procedural_grid

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (1000, 700)
"""Browser window (width, height); viser's panel covers the right ~345 pixels."""


def _browser() -> str | None:
    """The first Chromium or Chrome that runs (a snap stub that cannot start in a container does not count)."""
    names = [shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")]
    for path in [n for n in names if n] + ["/usr/bin/chromium"]:
        if not os.access(path, os.X_OK):
            continue
        try:
            out = subprocess.run([path, "--headless=new", "--no-sandbox", "--version"], capture_output=True, text=True,
                                 timeout=20, start_new_session=True, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and re.search(r"Chrom(e|ium) \d+", out.stdout):
            return path
    return None


BROWSER = _browser()
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("viser") is None, reason="viser is not installed (pip install 'vnvs[viewer]')"),
    pytest.mark.skipif(BROWSER is None, reason="no Chromium or Chrome on this machine"),
]
BROWSER_FLAGS = ["--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                 "--mute-audio", f"--window-size={WINDOW[0]},{WINDOW[1]}"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill(proc: subprocess.Popen) -> None:
    """End a process started with ``start_new_session=True`` and everything it started."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    try:  # children left in the group after the leader exited
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Server:
    """``vnvs view PATH`` in a subprocess, in its own process group; ``url`` once it serves."""

    def __init__(self, path: Path, tmp: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vnvs.cli", "view", str(path), "--port", str(_free_port()),
             "--trajectory-out", str(tmp / "editor.json")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("vnvs view: http://"):
                self.ready.set()

    def wait(self, timeout: float) -> str:
        assert self.ready.wait(timeout), f"vnvs view did not start:\n{''.join(self.lines)}"
        url = re.search(r"(http://\S+)", next(ln for ln in self.lines if ln.startswith("vnvs view:"))).group(1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    assert r.status == 200 and b"<html" in r.read(2000).lower()
                return url
            except OSError:
                assert time.monotonic() < deadline, f"{url} does not answer"
                time.sleep(0.2)


def _screenshot(url: str, out: Path, profile: Path, budget_ms: int = 8000, timeout: float = 40) -> np.ndarray:
    """Chromium's screenshot of ``url`` after ``budget_ms`` of virtual time, as RGB uint8."""
    proc = subprocess.Popen([BROWSER, *BROWSER_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                             f"--screenshot={out}", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        _kill(proc)
    assert out.is_file(), "Chromium wrote no screenshot"
    return cv2.imread(str(out))[:, :, ::-1]


def _canvas_pixels(img: np.ndarray) -> np.ndarray:
    """``(N, 3)`` pixels of the 3D canvas, less viser's panel (right), its notification (top left) and the axes
    gizmo (bottom left)."""
    H, W = img.shape[:2]
    keep = np.ones((H, W), bool)
    keep[:, W - 345:] = False
    keep[:160, :320] = False
    keep[H - 75:, :75] = False
    return img[keep].astype(np.int64)


def _scene_pixels(px: np.ndarray) -> np.ndarray:
    """Pixels that are neither the white background nor the saturated camera-path lines (orange, blue)."""
    return (255 - px.min(1) > 40) & (px.max(1) - px.min(1) < 100)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A procedural grid folder (3 views x 4 times, 32 px) and a scene folder fitted to it in a few steps."""
    root = tmp_path_factory.mktemp("view_browser")
    write_grid(root / "grid", procedural_grid(2, views=3, frames=4, size=32))
    fast = ["--steps", "4", "--deform-warmup", "2", "--densify-every", "100", "--mlp-width", "16", "--mlp-layers", "2"]
    assert main(["reconstruct", str(root / "grid"), "-o", str(root / "scene"), *fast]) == 0
    return root


@pytest.mark.parametrize("kind", ["scene", "grid"])
def test_browser_shows_the_scene(folders, tmp_path, kind):
    start = time.monotonic()
    server = _Server(folders / kind, tmp_path)
    try:
        url = server.wait(timeout=25)
        img = _screenshot(url, tmp_path / f"{kind}.png", tmp_path / "profile")
    finally:
        _kill(server.proc)
    shutil.copy(tmp_path / f"{kind}.png", folders / f"{kind}.png")  # kept with the fixtures for a look
    assert img.shape[:2] == (WINDOW[1], WINDOW[0])
    px = _canvas_pixels(img)
    scene = _scene_pixels(px)
    # An empty viewer (or one showing only camera paths) is white: 2% of such pixels measured; the scene, 50%.
    assert scene.mean() > 0.2, f"the canvas shows no scene ({scene.mean():.3f} of its pixels)"
    assert px.std() > 25
    # ... in the scene's colours: the frames' dominant channel dominates the canvas's scene pixels too
    frames = read_grid(folders / "grid", depth=False).frames.mean((0, 1, 3, 4)).numpy()
    shown = px[scene].mean(0)
    assert np.argmax(shown - shown.mean()) == np.argmax(frames - frames.mean()), (shown, frames)
    assert server.proc.returncode is not None  # the server is gone
    assert time.monotonic() - start < 60


def test_editor_records_the_browser_camera_and_saves_a_trajectory(folders, tmp_path):
    from vnvs.apps.view import open_view

    out = tmp_path / "path.json"
    server, viewable, state = open_view(ViewConfig(folders / "grid", port=_free_port(), trajectory_out=out))
    browser = None
    try:
        url = f"http://127.0.0.1:{server.get_port()}"
        browser = subprocess.Popen([BROWSER, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                                    "--remote-debugging-port=0", url],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        reported = threading.Event()
        deadline = time.monotonic() + 60
        while not server.get_clients():
            assert time.monotonic() < deadline, "the browser did not connect"
            time.sleep(0.2)
        client = next(iter(server.get_clients().values()))
        client.camera.on_update(lambda _cam: reported.set())
        last_report = [0.0]  # when the browser last reported its camera
        client.camera.on_update(lambda _cam: last_report.__setitem__(0, time.monotonic()))
        assert reported.wait(20), "the browser sent no camera"
        grid = read_grid(folders / "grid", depth=False)
        for i, (eye, target) in enumerate((((0.5, -0.5, -1.0), (0.0, 0.0, 2.0)), ((-0.5, -0.3, -0.5), (0.2, 0.1, 2.5)))):

            def set_camera() -> None:
                client.camera.up_direction = (0.0, -1.0, 0.0)
                client.camera.position = eye
                client.camera.look_at = target

            set_camera()
            set_at = time.monotonic()
            dist = math.dist(eye, target)
            on_axis = torch.tensor([0.0, 0.0, dist], dtype=torch.float64)

            def target_in_camera() -> torch.Tensor:
                c = client.camera
                w2c = keyframe_from_viser(c.position, c.wxyz, c.fov, 0).w2c
                return w2c[:3, :3] @ torch.tensor(target, dtype=torch.float64) + w2c[:3, 3]

            # The setters update the server's copy at once, so it matches before the browser has answered; the
            # browser then reports its own camera, possibly from mid-transition or, while still starting up,
            # its first pose. Wait for a report after the set that holds the pose set, setting it again each
            # second (viser's setters send nothing while the server's copy already holds the pose).
            resend = time.monotonic() + 1.0
            while last_report[0] <= set_at or (target_in_camera() - on_axis).abs().max() > 2e-3 or \
                    np.linalg.norm(client.camera.position - eye) > 1e-4:
                if time.monotonic() > deadline:
                    break
                if time.monotonic() > resend:
                    set_camera()
                    resend = time.monotonic() + 1.0
                time.sleep(0.05)
            time.sleep(0.3)
            state.show(i * 3)
            state.add_keyframe(client)
            k = state.keyframes[-1]
            assert k.time == i * 3 and k.fov == pytest.approx(client.camera.fov)
            # the browser looks at `target`: vnvs's w2c puts it on the optical axis, in front, at its distance
            cam = k.w2c[:3, :3] @ torch.tensor(target, dtype=torch.float64) + k.w2c[:3, 3]
            torch.testing.assert_close(cam, on_axis, atol=2e-3, rtol=0)
            # world "up" (-y) stays up in the image
            up = k.w2c[:3, :3] @ torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)
            assert up[1] < 0
        state.use_times.value = True
        state.save(client)
        assert out.is_file() and "saved 4 frames" in state.save_label.content, state.save_label.content
        traj = Trajectory.load(out)
        assert len(traj) == 4 and (traj.height, traj.width) == viewable.size and traj.time_index.tolist() == [0, 1, 2, 3]
        torch.testing.assert_close(traj.w2c[0].double(), state.keyframes[0].w2c, atol=1e-5, rtol=0)
        # read as `vnvs render-scene --trajectory` reads it: relative to nothing, 4 frames on a 4-column grid
        source = Cameras(grid.w2c[0], grid.K[0], 32, 32)
        torch.testing.assert_close(resolve_trajectory(out, source, 1.0).w2c, traj.w2c)
        state.clear_keyframes()
        assert not state.keyframes and state.kf_label.content == "0 keyframes"
        # Play walks the time steps at the grid's fps (12) and loops; Pause stops it
        seen = set()
        state.toggle_play()
        assert state.play.label == "Pause"
        t0 = time.monotonic()
        while len(seen) < viewable.num_times and time.monotonic() - t0 < 5:
            seen.add(int(state.slider.value))
            time.sleep(0.01)
        state.toggle_play()
        assert seen == set(range(viewable.num_times)) and state.play.label == "Play"
        assert state.step == int(state.slider.value)  # the slider's callback showed each step
        time.sleep(0.3)
        stopped = int(state.slider.value)
        time.sleep(0.3)
        assert int(state.slider.value) == stopped
    finally:
        if browser is not None:
            _kill(browser)
        server.stop()
