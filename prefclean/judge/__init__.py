"""The LLM judge: tasks, parsing, engines, cache and the UDF that models call."""
