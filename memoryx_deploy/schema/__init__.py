"""Stage 0, the stack's shape: typed dictionaries and StackError, shared by every stage, no logic."""
