"""Local learning: training (`training`), the BVFB behaviour model (`behaviour`), privacy (`privacy`)."""
