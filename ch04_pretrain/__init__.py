"""Chapter 4: pretraining a GPT on OpenWebText.

Part 1, the data: GPT-2's byte-pair encoding offline (bpe.py), readers for
OpenWebText and local corpora (sources.py), tokenization into shards
(prepare.py), and training batches from the shards (loader.py).

This file deliberately imports nothing. The tokenizing workers are spawned
processes that import this package; keeping it empty keeps torch out of them
(see workers.py). Import from the modules: `from ch04_pretrain.loader import
ShardDataset`.
"""
