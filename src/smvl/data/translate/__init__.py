"""`smvl data translate`: a the_cauldron-shaped source into Chinese JSONL through an OpenAI-compatible endpoint."""
