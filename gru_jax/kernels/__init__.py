"""Hand-written accelerator kernels (Pallas). Each module is one cell's kernels with a pure-JAX fallback
elsewhere in the library; `supported(...)` in each says where a kernel applies."""
