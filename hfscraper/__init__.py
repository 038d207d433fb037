"""hfscraper: a resumable, rate-limit-aware mirror of the Hugging Face Hub's metadata."""

__version__ = "0.1.0"
