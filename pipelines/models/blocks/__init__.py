"""Building blocks shared by the feed-forward models (one file per block)."""
