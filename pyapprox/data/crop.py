"""The Eigen et al. evaluation crop of NYU Depth v2, defined once (the loaders record it, the metrics apply it)."""

# Eigen crop for 480x640 images, half-open: rows 20:460, cols 24:616 (DenseDepth's
# eigen_test_crop.npy holds the inclusive [20, 459, 24, 615]).
EIGEN_CROP = (20, 460, 24, 616)
EIGEN_REFERENCE_SIZE = (480, 640)
