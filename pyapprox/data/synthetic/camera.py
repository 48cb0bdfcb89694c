"""Pinhole camera and point light of the synthetic renderer.

World frame: y is up and the floor is y = 0.  :func:`intrinsics` scales the NYU Depth v2 colour
camera (:data:`NYU_INTRINSICS` at 640x480) to any resolution; :func:`camera_rotation` gives the
camera-to-world rotation whose columns are the camera's right, down and forward axes;
:class:`Camera` holds a position and that rotation; :class:`Light` is a coloured point light.
:data:`MIN_DEPTH`..:data:`MAX_DEPTH` is the depth range every random scene keeps to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: NYU Depth v2 colour-camera intrinsics at 640x480: fx, fy, cx, cy.
NYU_INTRINSICS = (518.8579, 519.4696, 325.5824, 253.7362)
_NYU_SIZE = (480, 640)

MIN_DEPTH = 0.5
MAX_DEPTH = 10.0


def intrinsics(height: int = 480, width: int = 640) -> tuple[float, float, float, float]:
    """NYU intrinsics (fx, fy, cx, cy) scaled proportionally to ``height`` x ``width``."""
    sx, sy = width / _NYU_SIZE[1], height / _NYU_SIZE[0]
    fx, fy, cx, cy = NYU_INTRINSICS
    return fx * sx, fy * sy, cx * sx, cy * sy


def camera_rotation(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation (columns: camera right, down, forward in world coordinates).

    World: y is up, the floor is y = 0.  ``yaw`` turns the view from +z towards +x, ``pitch``
    > 0 looks up, ``roll`` rotates about the optical axis.
    """
    cy_, sy_ = math.cos(yaw), math.sin(yaw)
    forward = np.array([sy_, 0.0, cy_])
    right = np.array([-cy_, 0.0, sy_])
    down = np.array([0.0, -1.0, 0.0])
    base = np.stack([right, down, forward], axis=1)
    cp, sp = math.cos(pitch), math.sin(pitch)
    rp = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    cr, sr = math.cos(roll), math.sin(roll)
    rr = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return base @ rp @ rr


def look_at(position: Sequence[float], target: Sequence[float], roll: float = 0.0) -> "Camera":
    """A camera at ``position`` whose optical axis passes through ``target``."""
    p, t = np.asarray(position, float), np.asarray(target, float)
    d = t - p
    yaw = math.atan2(d[0], d[2])
    pitch = math.atan2(d[1], math.hypot(d[0], d[2]))
    return Camera(p, camera_rotation(yaw, pitch, roll))


@dataclass
class Camera:
    position: np.ndarray
    rotation: np.ndarray  # camera-to-world, see camera_rotation

    def __post_init__(self):
        self.position = np.asarray(self.position, dtype=np.float64).reshape(3)
        self.rotation = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)


@dataclass
class Light:
    position: np.ndarray
    intensity: float = 4.0  # radiance at 1 m (linear units; ~1 is a well-lit white surface)
    color: tuple = (1.0, 0.92, 0.8)

    def __post_init__(self):
        self.position = np.asarray(self.position, dtype=np.float64).reshape(3)
