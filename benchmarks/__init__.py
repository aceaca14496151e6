"""kzoo benchmark harness: `python -m benchmarks --help`. Results: benchmarks/RESULTS.md."""
