"""Chapter 4, part 1, the data: GPT-2's byte-pair encoding (bpe.py), readers of OpenWebText and local
corpora (sources.py), tokenization into shards (prepare.py, whose worker processes run encode_workers.py),
and training windows from the shards (loader.py)."""
