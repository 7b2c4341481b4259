"""The interpreters: their base Brain, one module per method, the training flow, the inference folder."""
