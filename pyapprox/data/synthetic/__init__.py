"""Procedural indoor RGB-D scenes: the project's embedded stand-in for NYU Depth v2.

NYU Depth v2 cannot be downloaded here, so this package ray-casts random furnished rooms with
numpy and returns NYU-like pairs: ``rgb`` uint8 ``[H, W, 3]`` and ``depth`` float32 ``[H, W]`` in
metres, where depth is the z-distance along the camera's optical axis (as in NYU/Kinect), not
the ray length.

Scenes
    A room (floor, four walls, ceiling) of random size (width 3-7 m, length 4-9 m, height
    2.4-3.2 m) with 4-12 pieces of furniture standing on the floor (tables, desks, chairs,
    shelves full of books, cabinets, beds, sofas, bins, stools, pillars, plant pots, balls), some
    with small items on top.  Boxes may be rotated about the vertical axis; cylinders are
    vertical.  Walls carry decals: framed posters, windows, doors, whiteboards, skirting boards.
    One hanging point lamp lights the room (Lambertian shading, hard cast shadows traced against
    the same primitives) plus a hemispherical ambient term; each image gets its own exposure,
    white balance, vignetting and sensor noise.

Camera
    Pinhole with NYU Depth v2 intrinsics at 640x480 (fx=518.8579, fy=519.4696, cx=325.5824,
    cy=253.7362), scaled proportionally for other resolutions (see :func:`intrinsics`).  Pixel
    ``(row v, column u)`` looks along camera direction ``((u - cx) / fx, (v - cy) / fy, 1)``
    (x right, y down, z forward), i.e. integer pixel coordinates are pixel centres.  Like NYU's
    hand-held Kinect, the camera is at chest height (1.3-1.5 m), pitched 0-8.6 degrees down with a
    small roll, anywhere in the room, looking at furniture or into the room.  The pose is
    chosen, never clipped, so that every visible depth lies in [0.5, 10] m: the camera keeps
    >= 0.7 m from every surface (the near frustum up to z = 0.5 m fits in a 0.64 m ball) and
    every room corner is at most 9.85 m deep (the room is convex, so nothing is deeper).

Textures
    Procedural (value-noise fBm, wood grain, floor planks, tiles/checker, carpet, wallpaper
    stripes, book spines, drawer fronts, doors, windows), all in metres of surface so scale is
    physically consistent, band-limited by the pixel footprint (octave fading, filtered
    lines, mip-mapped images).  Photographs shipped *inside* scikit-image are used as texture
    maps, read straight from ``skimage/data`` on disk (never through the fetcher, so nothing is
    ever downloaded): ``brick``, ``gravel`` and ``grass`` tile walls/floors/rugs; ``astronaut``,
    ``coffee``, ``chelsea``, ``rocket``, ``hubble_deep_field``, ``ihc``, ``motorcycle_left``,
    ``camera``, ``moon``, ``coins``, ``clock_motion``, ``page`` and ``text`` hang as posters,
    prints and documents.  A missing file falls back to a procedural pattern.

Speed (measured on this project's 2-core CPU machine under load, one process, numpy 2.4,
float64 geometry, 30 test-split scenes): 0.25 s per 480x640 image on average (0.20-0.42 s
depending on the scene), 56 ms at 240x320, 24 ms at 120x160.  Only the primitive's projected
screen rectangle is intersected for camera rays, and shadow rays are culled on a light-space
grid.  ``load_split`` renders with a pool of 2 processes and caches the result.

API (all re-exported here)
    :func:`render` ``(seed, height, width)`` = :func:`render_scene` ``(random_scene(seed))``;
    :class:`Scene`, :class:`Camera`, :class:`Light`, :class:`Material`, :class:`Room`,
    :class:`Box`, :class:`Cylinder`, :class:`Sphere`, :class:`Plane`, :class:`Decal` build
    scenes by hand; :func:`trace` returns depth and the index of the primitive seen at each
    pixel; :data:`SPLITS` and :func:`load_split` give the disjoint train/val/test seed ranges
    and the cached data sets.

Modules
    ``camera`` intrinsics, rotations, :class:`Camera`, :class:`Light`; ``textures`` noise and
    materials; ``primitives`` the scene primitives and :class:`Scene`; ``raycast`` tracing,
    shading and shadows; ``scenes`` random rooms; ``splits`` seeds, :func:`render`, the cache.
"""

from pyapprox.data.synthetic.camera import (
    MAX_DEPTH,
    MIN_DEPTH,
    NYU_INTRINSICS,
    Camera,
    Light,
    camera_rotation,
    intrinsics,
    look_at,
)
from pyapprox.data.synthetic.primitives import Box, Cylinder, Decal, Plane, Room, Scene, Sphere
from pyapprox.data.synthetic.raycast import render_scene, trace
from pyapprox.data.synthetic.scenes import CAMERA_HEIGHT, CAMERA_PITCH, random_scene
from pyapprox.data.synthetic.splits import (
    DEFAULT_SIZES,
    DEFAULT_TEST_SIZE,
    RENDERER_VERSION,
    SPLITS,
    _load_cached,
    cache_path,
    load_split,
    render,
)
from pyapprox.data.synthetic.textures import IMAGE_TEXTURES, Material, _image_pyramid, available_images

# also importable from here, outside __all__: CAMERA_HEIGHT, CAMERA_PITCH, and the private _image_pyramid and
# _load_cached that the tests use
__all__ = [
    "RENDERER_VERSION",
    "NYU_INTRINSICS",
    "MIN_DEPTH",
    "MAX_DEPTH",
    "SPLITS",
    "DEFAULT_SIZES",
    "DEFAULT_TEST_SIZE",
    "IMAGE_TEXTURES",
    "Material",
    "Decal",
    "Room",
    "Box",
    "Cylinder",
    "Sphere",
    "Plane",
    "Camera",
    "Light",
    "Scene",
    "intrinsics",
    "camera_rotation",
    "look_at",
    "random_scene",
    "trace",
    "render_scene",
    "render",
    "load_split",
    "cache_path",
    "available_images",
]
