"""Chapter 4, part 2, pretraining: settings and presets (settings.py), the training loop with accumulation,
mixed precision, clipping and DDP (trainer.py), exact resume (training_state.py), memory (memory.py,
peak_memory.py), evaluation (evaluate.py), OpenAI's GPT-2 weights (gpt2_weights.py) and plots (plot.py)."""
