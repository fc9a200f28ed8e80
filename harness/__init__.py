"""region-harness: build, boot and measure Linux kernels carrying the region allocator series."""

__version__ = "0.1.0"
