"""CUDA kernels (``numba.cuda.jit``, lazy signatures): one thread per fixation around the
shared bodies, plus host-side launchers with the same names and arguments as kernels/cpu."""
