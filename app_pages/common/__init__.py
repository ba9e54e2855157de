"""Code every panel page shares: access, texts, the store, data loading, charts, policy tables."""
