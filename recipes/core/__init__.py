"""The library of the commands: signal path, Brain builder, start-up, run guard, method labels."""
