"""A local replica of the Hugging Face Hub: a deterministic synthetic Hub (:mod:`.synth`), the Hub's JSON
shapes (:mod:`.shapes`) and the HTTP server that serves them. Imports nothing from the crawler."""
