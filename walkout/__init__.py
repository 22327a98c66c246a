"""walkout: checkout-free store pipeline."""

__version__ = "0.1.0"
